// FFmpeg log routing: quiet by default, error-level messages counted per decoder.
//
// The callback is installed once into pycodec's own (statically linked, hidden)
// copy of libavutil, so it never affects PyAV's FFmpeg in the same process.
// Messages are attributed to the decoder whose call is running on the current
// thread (threads=1: FFmpeg decodes synchronously in the caller's thread).
// PYCODEC_FFMPEG_LOG=<level> (e.g. "warning", "info", or a number) also prints
// messages up to that level to stderr.
#pragma once

#include <cstdint>
#include <string>

namespace pycodec {

struct LogSink {
    uint64_t errors = 0;     // error-level messages seen so far
    std::string last_error;  // text of the latest one (trimmed)
};

// While alive, error messages logged on this thread go to sink.
class LogScope {
public:
    explicit LogScope(LogSink& sink);
    ~LogScope();
    LogScope(const LogScope&) = delete;
    LogScope& operator=(const LogScope&) = delete;

private:
    LogSink* previous_;
};

// Installs the callback (idempotent, thread-safe).
void install_log_callback();

}  // namespace pycodec
