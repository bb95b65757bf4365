#include "decode_ahead.h"

#include <algorithm>
#include <iterator>
#include <new>
#include <stdexcept>
#include <utility>

#include "blob.h"

namespace pycodec {
namespace {

// A copy of the decoder's current frame that holds none of the decoder's pooled memory (see the
// header): its properties and side data (the export blob, by reference), and a copy of its planes
// when pixels is true, else no planes.
FramePtr owned_copy(const AVFrame& src, bool pixels) {
    FramePtr f(av_frame_clone(&src));
    if (!f) throw std::bad_alloc();
    for (AVBufferRef*& b : f->buf) av_buffer_unref(&b);
    for (int i = 0; i < f->nb_extended_buf; ++i) av_buffer_unref(&f->extended_buf[i]);
    av_freep(&f->extended_buf);
    f->nb_extended_buf = 0;
    std::fill(std::begin(f->data), std::end(f->data), nullptr);
    std::fill(std::begin(f->linesize), std::end(f->linesize), 0);
    f->extended_data = f->data;
    if (pixels) {
        int ret = av_frame_get_buffer(f.get(), 0);
        if (ret == AVERROR(ENOMEM)) throw std::bad_alloc();
        if (ret >= 0) ret = av_frame_copy(f.get(), &src);
        if (ret < 0)
            throw std::runtime_error("cannot copy a decoded picture: " + error_string(ret));
    }
    return f;
}

}  // namespace

DecodeAhead::DecodeAhead(Decoder& dec, size_t depth, bool pixels)
    : dec_(dec), depth_(depth ? depth : 1), pixels_(pixels), thread_([this] { run(); }) {}

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
                // Both before the decoder goes on, as a reader in this thread would: the
                // expansion lets go of the decoder's tables, the copy of its picture.
                Blob::expand(dec_.frame());
                item.frame = owned_copy(dec_.frame(), pixels_);
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
