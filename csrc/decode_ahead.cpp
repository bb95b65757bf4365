#include "decode_ahead.h"

#include <new>
#include <utility>

namespace pycodec {

DecodeAhead::DecodeAhead(Decoder& dec, size_t depth)
    : dec_(dec), depth_(depth ? depth : 1), thread_([this] { run(); }) {}

DecodeAhead::~DecodeAhead() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void DecodeAhead::run() {
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mu_);
            changed_.wait(lock, [this] { return stop_ || queue_.size() < depth_; });
            if (stop_) break;
        }
        Item item;
        bool got = false;
        std::exception_ptr error;
        try {
            got = dec_.next();
            if (got) {
                item.frame.reset(av_frame_clone(&dec_.frame()));
                if (!item.frame) throw std::bad_alloc();
                item.pts = dec_.pts();
                item.packet = dec_.packet_index();
                item.errors = dec_.frame_error_flags();
            }
        } catch (...) {
            error = std::current_exception();
            got = false;
        }
        std::lock_guard<std::mutex> lock(mu_);
        try {
            if (last_error_ != dec_.last_error()) last_error_ = dec_.last_error();
            if (got) queue_.push_back(std::move(item));
        } catch (...) {  // out of memory: the reader gets it after the frames queued so far
            error = std::current_exception();
            got = false;
        }
        if (!got) {
            error_ = error;
            break;
        }
        changed_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    changed_.notify_all();
}

bool DecodeAhead::pop(Item& out) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] { return !queue_.empty() || done_; });
    if (!queue_.empty()) {
        out = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        changed_.notify_all();
        return true;
    }
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return false;
}

std::string DecodeAhead::last_error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_error_;
}

}  // namespace pycodec
