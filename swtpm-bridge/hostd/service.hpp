// vtpm-hostd's statements: each request kind of hostapi/protocol.hpp checked
// and carried out against the host root (the TPM, the AuthKey, HOSTDIR).
// Transport-free: main.cpp reads frames from the socket and hands bodies here.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "issuance/host_root.hpp"
#include "hoststate/ledger.hpp"
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
    Service(issuance::HostRoot& root, std::string ek_ca)
        : root_(root), ek_ca_(std::move(ek_ca)), ledger_(root.dir(), root.ledger_mac_key()) {}
    /// Load HOSTDIR/ledger and check it against the host TPM's ledger
    /// counter (defining the counter on a new host). Refuses a ledger that is
    /// older than the counter (HOSTDIR rolled back), missing while the
    /// counter exists, or ahead of it; finishes a commit the daemon was
    /// stopped in; takes in older versions' EK binding files once. Returns a
    /// line for the log.
    Result<std::string> open_ledger();
    /// The framed response to one request body. Never fails: a refused or
    /// malformed request gets a failure response naming why.
    Bytes handle(ByteView request_body, const Peer& peer);

private:
    /// open_ledger's check of the file against the counter.
    Result<std::string> check_ledger();
    /// open_ledger's one-time import of HOSTDIR/vms/*.ek into the ledger.
    Result<std::string> import_ek_files();
    /// Issuers of vTPM EK certificates the daemon trusts now: the AuthKey
    /// with the privacy CA's chain (empty before enrollment), and --ek-ca.
    struct EkIssuerCerts {
        std::vector<vtpm::X509Ptr> authkey, local_ca;
    };
    Result<EkIssuerCerts> trusted_ek_issuers() const;
    /// VaikChallenge: `what` names the VM for the log line.
    Result<std::vector<Bytes>> vaik_challenge(const std::vector<Bytes>& fields, std::string& what);

    issuance::HostRoot& root_;
    std::string ek_ca_;
    issuance::VaikChallenges challenges_;
    hoststate::Ledger ledger_;  // in memory, written through; anchored by the TPM counter
};

}  // namespace vtpm::hostd
