// Secrets sealed to the host TPM: the AuthKey's auth value and each VM's
// state key (hoststate/state_keys.hpp). The auth value: 32 random bytes that
// only vtpm-hostd holds in memory. On disk (HOSTDIR/authkey-auth.sealed, mode 0600, owned by the
// daemon's user) it is a TPM sealed-data object under a storage primary of
// the owner hierarchy, unsealable only in this TPM and only while the host
// PCRs hold a state the owner approved (host_policy.hpp): a copy of HOSTDIR
// is useless elsewhere, and a process with the TPM device but without the
// file cannot use the AuthKey.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <string_view>

#include "hosttpm/esys.hpp"
#include "hosttpm/host_policy.hpp"
#include "util/bytes.hpp"
#include "util/secure_memory.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hosttpm {

/// Size of the AuthKey auth value (and of a VM's state key).
inline constexpr size_t kAuthValueSize = 32;
/// How errors name the AuthKey auth value.
inline constexpr std::string_view kAuthValueName = "the AuthKey auth value";

/// A fresh 32-byte secret from the TPM's random number generator; `what`
/// names it in errors ("the AuthKey auth value").
Result<ProtectedBytes> new_auth_value(Esys& tpm, std::string_view what);

/// Seal `secret` to this TPM under PolicyAuthorize(the owner's key, the
/// unseal policyRef): unsealable in any host state the owner approves for
/// unsealing (PolicyPCR ∧ PolicyCommandCode(Unseal)). The result is
/// TPM2B_PUBLIC || TPM2B_PRIVATE.
Result<Bytes> seal_secret(Esys& tpm, ByteView secret, const HostPolicy& policy, std::string_view what);

/// Unseal what seal_secret made. An error names `what` and why: another
/// TPM, a host state the owner did not approve, or a damaged file.
Result<ProtectedBytes> unseal_secret(Esys& tpm, ByteView sealed, const HostPolicy& policy, std::string_view what);

}  // namespace vtpm::hosttpm
