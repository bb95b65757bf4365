// Decoding ahead of the reader in a thread of its own, so that the frames' consumer (conversion to
// numpy, compression, HDF5 writes in Python) and the decoder run on two CPUs. The file is still
// decoded by one thread, in order, with FFmpeg's threads=1: only the caller changes.
//
// Frames cross to the reader as owned copies. FFmpeg takes picture buffers and per-picture tables
// from pools, and on damaged streams its output depends on what a recycled buffer still holds (the
// H.264 error concealment reads the tables of pictures, HEVC leaves the area of lost CTBs as the
// buffer had it), so on which buffer a pool hands out next, so on when its users let go of the
// previous ones. A reader holding the decoder's buffers while the decoder runs on would change the
// decoded pictures; the thread therefore lets go of them, exactly when decoding in the reader's
// thread does (before the next frame is decoded): the H.264 block maps are expanded from the
// tables here, and the planes copied (or left out when the reader does not want them). The export
// blob is kept by reference: the decoder writes it only while its picture is decoded, and what
// its pool hands out is fully rewritten or zeroed before anything is read from it.
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
        FramePtr frame;  // an owned copy: properties, export blob, planes only if wanted
        int64_t pts = 0;
        int64_t packet = 0;
        uint32_t errors = 0;
    };

    // Starts decoding dec's frames into a queue of at most depth (>= 1) frames; pixels: whether
    // the reader wants the decoded planes (else the queued frames carry none). dec must outlive
    // this object and must not be used by anyone else meanwhile.
    DecodeAhead(Decoder& dec, size_t depth, bool pixels);
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
    const bool pixels_;
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
