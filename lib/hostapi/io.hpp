// Whole-message socket I/O for the host API, shared by the client and
// vtpm-hostd: every byte or a clear error, never a half message.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hostapi {

/// Send all of `b` (no SIGPIPE).
Result<void> send_all(int fd, ByteView b);
/// Receive exactly `n` bytes, waiting at most `timeout_ms` for all of them.
/// `clean_eof` is set when the peer closed before the first byte.
Result<void> recv_exact(int fd, uint8_t* p, size_t n, int timeout_ms, bool& clean_eof);

}  // namespace vtpm::hostapi
