// Socket plumbing for the bridge's transports: listening sockets as swtpm
// creates them, and messages that may carry a file descriptor.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>

#include "util/bytes.hpp"
#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm::bridge {

/// Bind a TCP socket (SO_REUSEADDR) on bindaddr:port (IPv6 if the address has
/// a ':'; link-local needs ifname), listen(1).
Result<UniqueFd> listen_tcp(const std::string& bindaddr, unsigned port, const std::string& ifname);

/// True if fd is a socket.
bool is_socket(int fd);
/// True if fd is a listening socket.
bool is_listening(int fd);

/// One recvmsg of at most `max` bytes: appends what arrived to `buf`; a
/// passed fd (SCM_RIGHTS) is returned in `fd_out` (extra fds are closed).
/// Returns bytes read, 0 on EOF, -1 on error (errno set; EAGAIN when
/// nothing is there).
ssize_t recv_some(int fd, Bytes& buf, UniqueFd* fd_out, size_t max = 8192);
/// One receive (a read for a character device) straight into `into`, for
/// the data channel: bytes read, 0 on EOF, -1 on error (errno set; EAGAIN
/// when nothing is there).
ssize_t recv_into(int fd, std::span<uint8_t> into);

/// Write all of `data` (retrying on EINTR/partial writes). False on error.
bool write_all(int fd, ByteView data);

/// Make fd non-blocking / close-on-exec.
void set_nonblocking(int fd, bool on);
void set_cloexec(int fd);

}  // namespace vtpm::bridge
