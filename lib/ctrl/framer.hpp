// Framing of the control channel, for every front end (socket, chardev,
// CUSE): given what has arrived, is there a complete message and what does
// it say. swtpm's protocol has no length prefix; swtpm takes one message per
// read of up to kReadWindow bytes, reads on only until it has what the
// command needs (codec.hpp frame_size), and drops whatever else that read
// brought. A front end reads at most read_limit() bytes, so bytes a client
// wrote later stay in the socket as the next message, as with swtpm.
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
/// What swtpm's first read of a message takes at most: the 4-byte code and
/// a 4100-byte body buffer.
inline constexpr size_t kReadWindow = 4104;

struct FramerOptions {
    bool lock_storage = true;  // CMD_LOCK_STORAGE is a command (swtpm >= 0.8)
    bool vendor = false;       // the CMD_VTPM_* commands are enabled
};

struct Frame {
    enum class Kind {
        Incomplete,  // wait for more bytes
        Message,     // the `size` buffered bytes are one message; `request` is it decoded
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
    /// The message in `buffered` (which starts at a message boundary and
    /// was read within read_limit()).
    Frame next(ByteView buffered) const;
    /// How many more bytes a front end may read for the message begun in
    /// `buffered`: up to kReadWindow in all, and past that (a large state
    /// blob or hash) exactly what the message still lacks.
    size_t read_limit(ByteView buffered) const;

private:
    FramerOptions opts_;
};

}  // namespace vtpm::ctrl
