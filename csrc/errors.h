// Exceptions raised by the core; module.cpp translates them to Python exceptions.
#pragma once

#include <stdexcept>
#include <string>

namespace pycodec {

// The file cannot be opened or read: becomes OSError(errno, message, path).
class InputOSError : public std::runtime_error {
public:
    InputOSError(int errnum, const std::string& what, std::string path)
        : std::runtime_error(what), errnum_(errnum), path_(std::move(path)) {}
    int errnum() const { return errnum_; }
    const std::string& path() const { return path_; }

private:
    int errnum_;
    std::string path_;
};

// The file is readable but not something pycodec can decode: becomes ValueError.
class UnsupportedInput : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace pycodec
