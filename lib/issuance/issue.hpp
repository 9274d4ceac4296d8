// `vtpm-attest issue`: give a VM's vTPM a fresh, host-rooted identity for
// one verifier request: the vAIK (created once), the
// CertAuthKey over H(certuser || nonce), the CertvAIK signed by the AuthKey,
// all written into the vTPM's NV, guarded by the host's uniqueness record.
#pragma once

#include <string>

#include "attest/evidence.hpp"
#include "hosttpm/esys.hpp"
#include "issuance/vtpm_channel.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

struct IssueRequest {
    std::string host_dir;
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

Result<IssueResult> issue_identity(hosttpm::Esys& host, VtpmChannel& vtpm, const IssueRequest& req);

}  // namespace vtpm::issuance
