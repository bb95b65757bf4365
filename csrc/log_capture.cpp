#include "log_capture.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "ffmpeg.h"

namespace pycodec {
namespace {

thread_local LogSink* t_sink = nullptr;
int g_print_level = AV_LOG_QUIET;  // set once before the callback is installed

int parse_level(const char* text) {
    if (!text || !*text) return AV_LOG_QUIET;
    struct Named {
        const char* name;
        int level;
    };
    static const Named names[] = {
        {"quiet", AV_LOG_QUIET}, {"panic", AV_LOG_PANIC},     {"fatal", AV_LOG_FATAL},
        {"error", AV_LOG_ERROR}, {"warning", AV_LOG_WARNING}, {"info", AV_LOG_INFO},
        {"verbose", AV_LOG_VERBOSE}, {"debug", AV_LOG_DEBUG}, {"trace", AV_LOG_TRACE},
    };
    for (const auto& n : names)
        if (std::strcmp(text, n.name) == 0) return n.level;
    return std::atoi(text);
}

void log_callback(void* avcl, int level, const char* fmt, va_list vl) {
    LogSink* sink = t_sink;
    const bool count = sink && level <= AV_LOG_ERROR;
    const bool print = level <= g_print_level;
    if (!count && !print) return;

    char line[1024];
    int prefix = 1;
    va_list copy;
    va_copy(copy, vl);
    av_log_format_line(avcl, level, fmt, copy, line, sizeof(line), &prefix);
    va_end(copy);
    if (count) {
        ++sink->errors;
        sink->last_error = line;
        while (!sink->last_error.empty() &&
               (sink->last_error.back() == '\n' || sink->last_error.back() == ' '))
            sink->last_error.pop_back();
    }
    if (print) std::fputs(line, stderr);
}

}  // namespace

LogScope::LogScope(LogSink& sink) : previous_(t_sink) { t_sink = &sink; }
LogScope::~LogScope() { t_sink = previous_; }

void install_log_callback() {
    static std::once_flag once;
    std::call_once(once, [] {
        g_print_level = parse_level(std::getenv("PYCODEC_FFMPEG_LOG"));
        av_log_set_callback(log_callback);
    });
}

}  // namespace pycodec
