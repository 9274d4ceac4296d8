// vtpm-hostd's statements: each request kind of hostapi/protocol.hpp checked
// and carried out against the host root (the TPM, the AuthKey, HOSTDIR).
// Transport-free: main.cpp reads frames from the socket and hands bodies here.
#pragma once

#include <sys/types.h>

#include <string>

#include "issuance/host_root.hpp"
#include "util/bytes.hpp"

namespace vtpm::hostd {

/// Who sent a request (SO_PEERCRED), for the log line of each statement.
struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};

class Service {
public:
    explicit Service(issuance::HostRoot& root) : root_(root) {}
    /// The framed response to one request body. Never fails: a refused or
    /// malformed request gets a failure response naming why.
    Bytes handle(ByteView request_body, const Peer& peer);

private:
    issuance::HostRoot& root_;
};

}  // namespace vtpm::hostd
