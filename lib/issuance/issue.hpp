// `vtpm-attest issue`: give a VM's vTPM a fresh, host-rooted identity for
// one verifier request: the vAIK (created once), the
// CertAuthKey over H(certuser || nonce), the CertvAIK signed by the AuthKey,
// all written into the vTPM's NV, guarded by the host's uniqueness record.
// Two halves: issue_identity runs in vtpm-attest and talks to the vTPM and to
// vtpm-hostd; sign_vaik_identity / confirm_vaik_identity run in the daemon.
#pragma once

#include <array>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "attest/evidence.hpp"
#include "hostapi/client.hpp"
#include "hoststate/ek_bindings.hpp"
#include "hoststate/identity_records.hpp"
#include "issuance/host_root.hpp"
#include "issuance/vtpm_channel.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

struct IssueRequest {
    std::string vm_uuid;
    Bytes user_cert_der;
    Bytes nonce;
    int days = 7;
    /// Accept a vTPM whose generation this host has no record of, or whose
    /// record disagrees (after an operator checked why).
    bool adopt = false;
};

struct IssueResult {
    Bytes vaik_cert_der;
    Bytes bundle;  // encoded IdentityBundle
    Bytes vaik_public;  // marshalled TPM2B_PUBLIC
    uint64_t generation = 0;
    bool vaik_created = false;
};

/// The client half: read or create the vAIK in the vTPM, ask the daemon for
/// the certificate and bundle, write them into the vTPM's NV, confirm.
Result<IssueResult> issue_identity(const hostapi::Client& hostd, VtpmChannel& vtpm, const IssueRequest& req);

/// Issuers of vTPM EK certificates the daemon trusts (self-signed roots and
/// intermediates). The AuthKey signs an EK certificate for whatever key it
/// is sent, so one of those counts only for the key bound to its VM.
struct EkIssuers {
    std::vector<const X509*> authkey;   // this host's AuthKey certificate and the privacy CA's chain
    std::vector<const X509*> local_ca;  // vtpm-setup's local CA (vtpm-hostd --ek-ca)
};

/// The challenges vtpm-hostd has handed out and not yet seen answered. A
/// vAIK is certified only after the vTPM whose EK certificate the daemon
/// trusts opened a credential made for that vAIK's name.
class VaikChallenges {
public:
    /// Check `req.ek_cert` against `trusted`: one from the AuthKey must name
    /// this VM in its CN and hold the EK key of `bound`, the VM's binding
    /// (hoststate/ek_bindings.hpp); one from the local CA must not name
    /// another VM. Then wrap a fresh secret to it for the vAIK's name.
    Result<hostapi::VaikChallengeReply> open(const hostapi::VaikChallengeRequest& req, const EkIssuers& trusted,
                                             const hoststate::EkBinding& bound);
    /// The activation in `req` answers an open challenge for this VM and
    /// vAIK; a challenge is answered once and expires after two minutes.
    Result<void> redeem(const hostapi::VaikRequest& req);

private:
    struct Entry {
        hostapi::Uuid vm{};
        Bytes vaik_name;
        SecureBytes secret;
        std::time_t expires = 0;
    };
    std::map<std::array<uint8_t, 16>, Entry> open_;
};

/// Where the daemon keeps the VMs' uniqueness records (vtpm-hostd: in its
/// ledger, anchored in the host TPM's counter, so an older record put back
/// is found out).
class IdentityBook {
public:
    virtual ~IdentityBook() = default;
    /// The VM's record; rc::kRetry when it has none.
    virtual Result<hoststate::IdentityRecord> load(const std::string& uuid) = 0;
    /// Keep `r`, durably and anchored, before this returns.
    virtual Result<void> save(const hoststate::IdentityRecord& r) = 0;
};

/// The daemon half: redeem the vAIK's challenge, check the uniqueness record
/// against what the vTPM holds, certify the AuthKey over H(user cert ||
/// nonce), sign the CertvAIK, and record the generation as pending.
Result<hostapi::VaikReply> sign_vaik_identity(HostRoot& root, VaikChallenges& challenges, IdentityBook& records,
                                              const hostapi::VaikRequest& req);
/// The vTPM holds generation `c.generation` with the vAIK named `c.vaik_name`.
Result<void> confirm_vaik_identity(IdentityBook& records, const hostapi::VaikConfirm& c);

}  // namespace vtpm::issuance
