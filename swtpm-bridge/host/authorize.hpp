// vtpm-host authorize: the host owner approves a host state. The AuthKey
// and every secret sealed to the host TPM are usable only in host states
// the owner's policy key approved (hosttpm/host_policy.hpp); after an OS
// update the owner approves the new measurements here instead of
// re-provisioning. The owner's authority is the private key; writing
// HOSTDIR/authorization needs the daemon's user or root.
#pragma once

#include <optional>
#include <string>

namespace vtpm::host {

/// Approve, with the private owner key in `owner_file`, the host state
/// whose PCRs (host.conf's selection) digest to `pcr_digest_hex`, or, when
/// that is empty, the state the TPM at `tcti` is in now (the TPM then also
/// checks every approval kept). Appends to HOSTDIR/authorization, or with
/// `replace` leaves only this approval. Logged to syslog (authpriv).
/// Returns the exit status.
int authorize_main(const std::string& dir, const std::string& owner_file, const std::optional<std::string>& tcti,
                   const std::string& pcr_digest_hex, bool replace);

}  // namespace vtpm::host
