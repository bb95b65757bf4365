// Decoding ahead of the reader in a thread of its own, so that the frames' consumer (conversion to
// numpy, compression, HDF5 writes in Python) and the decoder run on two CPUs. The file is still
// decoded by one thread, in order, with FFmpeg's threads=1: only the caller changes.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include "decoder.h"
#include "ffmpeg.h"

namespace pycodec {

class DecodeAhead {
public:
    // A decoded frame with what the Decoder knew about it when it was current.
    struct Item {
        FramePtr frame;  // a new reference to the decoder's frame (and its export blob)
        int64_t pts = 0;
        int64_t packet = 0;
        uint32_t errors = 0;
    };

    // Starts decoding dec's frames into a queue of at most depth (>= 1) frames. dec must outlive
    // this object and must not be used by anyone else meanwhile.
    DecodeAhead(Decoder& dec, size_t depth);
    // Stops the thread (a frame being decoded is finished first) and drops the queued frames.
    ~DecodeAhead();
    DecodeAhead(const DecodeAhead&) = delete;
    DecodeAhead& operator=(const DecodeAhead&) = delete;

    // Waits for the next frame; false at the end of the stream. An exception the decoder threw is
    // rethrown here once, after the frames decoded before it.
    bool pop(Item& out);
    // The decoder's latest error message, as of the last frame decoded.
    std::string last_error() const;

private:
    void run();

    Decoder& dec_;
    const size_t depth_;
    mutable std::mutex mu_;
    std::condition_variable changed_;  // a frame was queued or taken, or the state changed
    std::deque<Item> queue_;
    bool done_ = false;  // the thread has stopped (end of stream, error or stop_)
    bool stop_ = false;
    std::exception_ptr error_;
    std::string last_error_;
    std::thread thread_;  // last: started once the members above exist
};

}  // namespace pycodec
