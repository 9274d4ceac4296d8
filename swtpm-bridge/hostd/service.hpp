// vtpm-hostd's statements: each request kind of hostapi/protocol.hpp checked
// and carried out against the host root (the TPM, the AuthKey, HOSTDIR).
// Transport-free: main.cpp reads frames from the socket and hands bodies here.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "issuance/host_root.hpp"
#include "issuance/issue.hpp"
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
    /// `ek_ca`: a PEM file, or a directory of *cert.pem files, naming who
    /// may issue vTPM EK certificates besides this host's AuthKey (read at
    /// each challenge, so a CA made later is found).
    Service(issuance::HostRoot& root, std::string ek_ca) : root_(root), ek_ca_(std::move(ek_ca)) {}
    /// The framed response to one request body. Never fails: a refused or
    /// malformed request gets a failure response naming why.
    Bytes handle(ByteView request_body, const Peer& peer);

private:
    /// Issuers of vTPM EK certificates the daemon trusts now.
    Result<std::vector<vtpm::X509Ptr>> trusted_ek_issuers() const;
    /// VaikChallenge: `what` names the VM for the log line.
    Result<std::vector<Bytes>> vaik_challenge(const std::vector<Bytes>& fields, std::string& what);

    issuance::HostRoot& root_;
    std::string ek_ca_;
    issuance::VaikChallenges challenges_;
};

}  // namespace vtpm::hostd
