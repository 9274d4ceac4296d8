// Framing of the control channel, for every front end (socket, chardev,
// CUSE): given what has arrived, is there a complete message, how long is
// it, and what does it say. swtpm's protocol has no length prefix, so the
// size depends on the command code and, for some, on a length in the body.
// Pure: no I/O, no timers (a front end keeps swtpm's 500 ms deadline for an
// incomplete message itself).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "ctrl/codec.hpp"

namespace vtpm::ctrl {

/// No control message may be larger than a SET_STATEBLOB of the maximum size.
inline constexpr size_t kMaxMessage = kMaxStateBlob + 16;

struct FramerOptions {
    bool lock_storage = true;  // CMD_LOCK_STORAGE is a command (swtpm >= 0.8)
    bool vendor = false;       // the CMD_VTPM_* commands are enabled
};

struct Frame {
    enum class Kind {
        Incomplete,  // wait for more bytes
        Message,     // `size` bytes make one message; `request` is it decoded
        Fatal,       // the message cannot be framed: answer `fatal_result`, drop `size` bytes, close
    };
    Kind kind = Kind::Incomplete;
    uint32_t code = 0;  // the command code (0 when fewer than 4 bytes arrived)
    size_t size = 0;
    /// Message: the decoded request (views into the buffer), or why it is
    /// malformed (its code is the result to answer).
    Result<Request> request = make_error(rc::kFail, "no message");
    /// Fatal: the result to answer and what to log.
    uint32_t fatal_result = 0;
    std::string reason;
};

class Framer {
public:
    explicit Framer(FramerOptions opts) : opts_(opts) {}
    const FramerOptions& options() const { return opts_; }
    /// The first message in `buffered` (which starts at a message boundary).
    Frame next(ByteView buffered) const;

private:
    FramerOptions opts_;
};

}  // namespace vtpm::ctrl
