// The hardware root of trust as the host daemon holds it: the host TPM, the
// provisioned AuthKey (checked against HOSTDIR/authkey.pub by TPM name) and
// its auth value, unsealed into wiped memory. Only vtpm-hostd (and vtpm-host,
// the operator's tool that runs as the same user before the daemon starts)
// make one; everything else asks the daemon.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <memory>
#include <string>
#include <string_view>

#include "hoststate/host_files.hpp"
#include "hosttpm/esys.hpp"
#include "hosttpm/host_ops.hpp"
#include "hosttpm/host_policy.hpp"
#include "hosttpm/ledger_counter.hpp"
#include "util/bytes.hpp"
#include "util/secure_memory.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

class HostRoot {
public:
    /// Open the root whose files are in `host_dir`, on `tpm`: reads host.conf
    /// and authkey.pub, refuses when the TPM's AuthKey is another key or is
    /// not bound to HOSTDIR/owner.pem, has the TPM check the owner's
    /// approvals (HOSTDIR/authorization), unseals the auth value and proves
    /// it with a TPM2_Certify, so a root that cannot sign is found at start,
    /// not at the first request.
    static Result<std::unique_ptr<HostRoot>> open(std::unique_ptr<hosttpm::Esys> tpm, const std::string& host_dir);

    hosttpm::Esys& tpm() { return *tpm_; }
    const std::string& dir() const { return dir_; }
    const hoststate::HostConfig& config() const { return cfg_; }
    /// The owner key and the host states it approved, as the TPM checked them.
    const hosttpm::HostPolicy& policy() const { return policy_; }
    /// HOSTDIR's owner key and approvals over `pcrs`, checked by `tpm`.
    static Result<hosttpm::HostPolicy> load_policy(hosttpm::Esys& tpm, const std::string& host_dir,
                                                   const TPML_PCR_SELECTION& pcrs);
    /// The AuthKey's public area and TPM name.
    const TPMT_PUBLIC& authkey_public() const { return authkey_; }
    const Bytes& authkey_name() const { return authkey_name_; }

    /// TPM2_Sign of a SHA-256 digest by the AuthKey. Callers sign only what
    /// they built and checked themselves (a record, a certificate body).
    Result<TPMT_SIGNATURE> sign_digest(ByteView digest);
    /// The host TPM counter that anchors the snapshot ledger, authorised by
    /// a value derived from the auth value.
    hosttpm::LedgerCounter ledger_counter() const { return hosttpm::LedgerCounter(derive_key(kLedgerCounterLabel)); }
    /// The key of the ledger file's MAC.
    ProtectedBytes ledger_mac_key() const { return derive_key(kLedgerMacLabel); }
    /// HMAC-SHA256(auth value, `label`) in protected memory: the one way a
    /// secret for another purpose is derived from the AuthKey's auth value.
    ProtectedBytes derive_key(std::string_view label) const;
    static constexpr std::string_view kLedgerMacLabel = "libvtpm ledger mac v1";
    static constexpr std::string_view kLedgerCounterLabel = "libvtpm ledger counter v1";
    /// TPM2_Certify of the AuthKey by the host AK over `qualifying`.
    Result<hosttpm::SignedAttest> certify_authkey(ByteView qualifying);
    /// TPM2_Quote of the policy's host PCRs by the host AK over `qualifying`.
    Result<hosttpm::SignedAttest> quote_host_pcrs(ByteView qualifying);

    HostRoot(std::unique_ptr<hosttpm::Esys> tpm, std::string dir, hoststate::HostConfig cfg, TPMT_PUBLIC authkey,
             Bytes name, ProtectedBytes auth, hosttpm::HostPolicy policy)
        : tpm_(std::move(tpm)), dir_(std::move(dir)), cfg_(cfg), authkey_(authkey), authkey_name_(std::move(name)),
          auth_(std::move(auth)), policy_(std::move(policy)) {}

private:
    std::unique_ptr<hosttpm::Esys> tpm_;
    std::string dir_;
    hoststate::HostConfig cfg_;
    TPMT_PUBLIC authkey_{};
    Bytes authkey_name_;
    ProtectedBytes auth_;  // locked, kept out of core dumps, wiped
    hosttpm::HostPolicy policy_;
};

}  // namespace vtpm::issuance
