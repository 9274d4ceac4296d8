// The host's state directory (HOSTDIR, default /var/lib/libvtpm/host): one
// place that knows every file in it and writes them durably.
//   host.conf           handles, AuthKey PCR selection and policy
//   ak.pem, ak.pub      host AK public key (PEM, TPM2B_PUBLIC)
//   authkey.pem/.pub    AuthKey public key
//   authkey.policy      its policy digest
//   authkey-auth.sealed its auth value, sealed to the host TPM (mode 0600;
//                       only vtpm-hostd and vtpm-host, as its user, read it)
//   ak-cert.pem         host AK certificate from the privacy CA (enroll)
//   authkey-cert.pem    AuthKey certificate from the privacy CA (enroll)
//   ca-chain.pem        the privacy CA's issuing and root certificates
//   owner.pem           the host owner's policy public key (provision pins it)
//   authorization       the host states the owner approved (vtpm-host authorize)
//   .lock               held (flock) by the vtpm-hostd serving HOSTDIR (one at a time),
//                       and by vtpm-host provision/enroll while they rewrite it
//   vms/<uuid>.record   identity uniqueness records (identity_records.hpp)
//   vms/<uuid>.snapshot the last snapshot generation signed (ledger.hpp)
//   vms/<uuid>.leaves   that snapshot's page hashes (ledger.hpp)
//   vms/<uuid>.statekey the VM's state-at-rest key, sealed (state_keys.hpp)
//   vms/<uuid>.ek       the EK keys certified for the VM (ek_bindings.hpp)
#pragma once

#include "util/fd.hpp"

#include <tss2/tss2_tpm2_types.h>

#include <string>
#include <vector>

#include "util/bytes.hpp"
#include "util/ossl.hpp"

#include "vtpm/result.hpp"

namespace vtpm::hoststate {

inline constexpr const char* kHostConf = "host.conf";
inline constexpr const char* kAkPem = "ak.pem";
inline constexpr const char* kAkPub = "ak.pub";
inline constexpr const char* kAuthKeyPem = "authkey.pem";
inline constexpr const char* kAuthKeyPub = "authkey.pub";
inline constexpr const char* kAuthKeyPolicy = "authkey.policy";
inline constexpr const char* kAuthKeySealed = "authkey-auth.sealed";
inline constexpr const char* kAkCertFile = "ak-cert.pem";
inline constexpr const char* kAuthKeyCertFile = "authkey-cert.pem";
inline constexpr const char* kCaChainFile = "ca-chain.pem";
inline constexpr const char* kOwnerPem = "owner.pem";
inline constexpr const char* kAuthorization = "authorization";
inline constexpr const char* kDaemonLock = ".lock";
/// Per-VM files live here, below HOSTDIR.
inline constexpr const char* kVmsDir = "vms";

/// What HOSTDIR/host.conf says.
struct HostConfig {
    TPML_PCR_SELECTION authkey_pcrs{};
};

/// What `vtpm-host provision` made in the host TPM, as HOSTDIR keeps it.
struct ProvisionedKeys {
    uint32_t ak_handle = 0, authkey_handle = 0;
    std::string ak_pem, authkey_pem;  // public keys, PEM
    Bytes ak_pub, authkey_pub;        // TPM2B_PUBLIC
    Bytes policy;                     // the AuthKey's policy digest
    Bytes sealed_auth;                // its sealed auth value; empty: keep the file there is
    std::vector<unsigned> pcrs;       // the host sha256 PCRs it is bound to
};

/// Create HOSTDIR (0755) and write the key files, authkey.policy, the sealed
/// auth value (0600) and host.conf, each durably.
Result<void> write_provisioned(const std::string& host_dir, const ProvisionedKeys& k);

/// Read HOSTDIR/host.conf (written by `vtpm-host provision`).
Result<HostConfig> read_host_config(const std::string& host_dir);

/// Write `text` to HOSTDIR/name durably (temp file, fsync, rename).
Result<void> write_host_file(const std::string& host_dir, const std::string& name, const std::string& text,
                             unsigned mode = 0644);

/// One host state the owner approved: the digest of the selected host PCRs
/// and the owner's signatures (marshalled TPMT_SIGNATURE) over the AuthKey
/// policy and the unseal policy for it (tpm::approval_message).
struct Approval {
    Bytes pcr_digest, authkey_signature, unseal_signature;
    uint64_t time = 0;  // when it was approved (seconds since the epoch; informational)
};
/// The most approvals HOSTDIR/authorization keeps (oldest dropped first).
inline constexpr size_t kMaxApprovals = 8;

/// HOSTDIR/authorization as text, and back. The parser refuses anything it
/// does not know (a damaged or edited file is not half-read).
std::string encode_authorization(const std::vector<Approval>& approvals);
Result<std::vector<Approval>> parse_authorization(std::string_view text);
/// Read it; a missing file is an error naming `vtpm-host authorize`.
Result<std::vector<Approval>> read_authorization(const std::string& host_dir);
/// Write it durably (temp file, fsync, rename).
Result<void> write_authorization(const std::string& host_dir, const std::vector<Approval>& approvals);

/// HOSTDIR/owner.pem: the owner's policy public key.
Result<PkeyPtr> read_owner_key(const std::string& host_dir);
Result<void> write_owner_key(const std::string& host_dir, EVP_PKEY* key);

/// HOSTDIR/name.
inline std::string host_path(const std::string& host_dir, const std::string& name) { return host_dir + "/" + name; }

/// Take HOSTDIR/.lock (exclusive flock, non-blocking), held while the
/// returned descriptor is open: vtpm-hostd holds it while it serves, and
/// the vtpm-host commands that rewrite HOSTDIR take it so that they never
/// run beside the daemon. A HOSTDIR that does not exist yet needs no lock
/// (an empty descriptor). rc::kFail naming `holder` when someone has it.
Result<UniqueFd> lock_host_dir(const std::string& host_dir, const std::string& holder);

}  // namespace vtpm::hoststate
