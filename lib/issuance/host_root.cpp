#include "issuance/host_root.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "hosttpm/host_keys.hpp"
#include "hosttpm/sealed_secret.hpp"
#include "tpm/objects.hpp"
#include "util/durable_file.hpp"

namespace vtpm::issuance {

namespace {

// What the start-up TPM2_Certify is over: not a hash, so it can never pass
// for a CertAuthKey (whose qualifying data is H(user cert || nonce)).
constexpr const char kStartCheck[] = "libvtpm host root start check";

}  // namespace

Result<std::unique_ptr<HostRoot>> HostRoot::open(std::unique_ptr<hosttpm::Esys> tpm, const std::string& host_dir) {
    auto cfg = hoststate::read_host_config(host_dir);
    if (!cfg) return cfg.error();
    const std::string pub_path = hoststate::host_path(host_dir, hoststate::kAuthKeyPub);
    auto raw = read_whole_file(pub_path);
    if (!raw) return make_error(rc::kFail, pub_path + ": " + raw.error().message + " (run vtpm-host provision first)");
    auto pub = tpm::unmarshal_public(*raw);
    if (!pub) return make_error(rc::kFail, pub_path + ": " + pub.error().message);
    auto name = tpm::object_name(*pub);
    if (!name) return name.error();
    // Records and certificates are checked against this file: it must be the
    // AuthKey in this TPM, or a replaced HOSTDIR would vouch with another key.
    auto live = hosttpm::read_persistent(*tpm, hosttpm::kAuthKeyHandle);
    if (!live)
        return make_error(rc::kFail, "no AuthKey in the host TPM at " + hex32(hosttpm::kAuthKeyHandle) + ": " +
                                         live.error().message + " (run vtpm-host provision)");
    auto live_name = tpm::object_name(live->publicArea);
    if (!live_name) return live_name.error();
    if (*live_name != *name)
        return make_error(rc::kFail, pub_path + " (name " + to_hex(*name).substr(0, 16) +
                                         "...) is not the AuthKey in the host TPM (name " +
                                         to_hex(*live_name).substr(0, 16) +
                                         "...): the host directory was replaced, or it belongs to another host");
    const std::string sealed_path = hoststate::host_path(host_dir, hoststate::kAuthKeySealed);
    auto sealed = read_whole_file(sealed_path);
    if (!sealed)
        return make_error(rc::kFail, sealed_path + ": " + sealed.error().message +
                                         " (the AuthKey's auth value; without it nothing can be signed)");
    auto policy = load_policy(*tpm, host_dir, cfg->authkey_pcrs);
    if (!policy) return policy.error();
    // The AuthKey must be bound to the owner key HOSTDIR names: a swapped
    // owner.pem would otherwise approve states for a key it does not govern.
    auto want = policy->authkey_auth_policy();
    if (!want) return want.error();
    if (Bytes(pub->authPolicy.buffer, pub->authPolicy.buffer + pub->authPolicy.size) != *want)
        return make_error(rc::kFail, "the AuthKey is not bound to the owner key in " +
                                         hoststate::host_path(host_dir, hoststate::kOwnerPem) +
                                         " (replaced owner key, or an AuthKey from an older libvtpm: re-provision)");
    auto auth = hosttpm::unseal_secret(*tpm, *sealed, *policy, hosttpm::kAuthValueName);
    if (!auth) return make_error(rc::kFail, sealed_path + ": " + auth.error().message);
    auto root = std::make_unique<HostRoot>(std::move(tpm), host_dir, *cfg, *pub, std::move(*name), std::move(*auth),
                                           std::move(*policy));
    auto check = root->certify_authkey(
        ByteView(reinterpret_cast<const uint8_t*>(kStartCheck), sizeof kStartCheck - 1));
    if (!check) return make_error(rc::kFail, "the AuthKey cannot be used: " + check.error().message);
    return root;
}

Result<hosttpm::HostPolicy> HostRoot::load_policy(hosttpm::Esys& tpm, const std::string& host_dir,
                                                  const TPML_PCR_SELECTION& pcrs) {
    auto owner = hoststate::read_owner_key(host_dir);
    if (!owner) return owner.error();
    auto approvals = hoststate::read_authorization(host_dir);
    if (!approvals) return approvals.error();
    auto policy = hosttpm::HostPolicy::check(tpm, owner->get(), pcrs, *approvals);
    if (!policy)
        return make_error(rc::kFail, hoststate::host_path(host_dir, hoststate::kAuthorization) + ": " +
                                         policy.error().message);
    return policy;
}

Result<TPMT_SIGNATURE> HostRoot::sign_digest(ByteView digest) {
    return hosttpm::authkey_sign(*tpm_, auth_, digest, policy_);
}

Result<hosttpm::SignedAttest> HostRoot::certify_authkey(ByteView qualifying) {
    return hosttpm::certify_authkey(*tpm_, auth_, qualifying, policy_);
}

Result<hosttpm::SignedAttest> HostRoot::quote_host_pcrs(ByteView qualifying) {
    return hosttpm::quote_host_pcrs(*tpm_, policy_.pcrs(), qualifying);
}

ProtectedBytes HostRoot::derive_key(std::string_view label) const {
    ProtectedBytes key(32);
    unsigned int n = 0;
    HMAC(EVP_sha256(), auth_.data(), static_cast<int>(auth_.size()), as_bytes(label).data(), label.size(), key.data(),
         &n);
    return key;
}

}  // namespace vtpm::issuance
