// Loopback TCP for the benchmark client: ports, connecting, and exact-size
// request/response exchanges on the data and control channels.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace bench {

using Bytes = std::vector<uint8_t>;

/// A port P with P and P+1 both free on 127.0.0.1 right now.
vtpm::Result<uint16_t> free_port_pair();

/// Connect to 127.0.0.1:port, retrying (every few µs) while the connection is
/// refused, until `deadline`. `still_alive` is asked between attempts so a
/// server that died is reported at once. The socket has TCP_NODELAY and a
/// receive timeout, so a server that never answers is an error, not a hang.
vtpm::Result<vtpm::UniqueFd> connect_retry(uint16_t port, std::chrono::steady_clock::time_point deadline,
                                           const std::function<bool()>& still_alive);

/// Write all of `msg`.
vtpm::Result<void> send_all(int fd, const uint8_t* msg, size_t len);
/// Append to `buf` until it holds at least `want` bytes (one read may bring more).
vtpm::Result<void> recv_at_least(int fd, Bytes& buf, size_t want);

/// One TPM command on the data channel: send `cmd`, read the response header
/// and then exactly `responseSize` bytes into `rsp` (reused between calls).
vtpm::Result<void> tpm_transact(int fd, const Bytes& cmd, Bytes& rsp);

}  // namespace bench
