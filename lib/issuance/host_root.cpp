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
    auto auth = hosttpm::unseal_secret(*tpm, *sealed, cfg->authkey_pcrs, hosttpm::kAuthValueName);
    if (!auth) return make_error(rc::kFail, sealed_path + ": " + auth.error().message);
    auto root = std::make_unique<HostRoot>(std::move(tpm), host_dir, *cfg, *pub, std::move(*name), std::move(*auth));
    auto check = root->certify_authkey(
        ByteView(reinterpret_cast<const uint8_t*>(kStartCheck), sizeof kStartCheck - 1));
    if (!check) return make_error(rc::kFail, "the AuthKey cannot be used: " + check.error().message);
    return root;
}

Result<TPMT_SIGNATURE> HostRoot::sign_digest(ByteView digest) {
    return hosttpm::authkey_sign(*tpm_, auth_, digest, cfg_.authkey_pcrs);
}

Result<hosttpm::SignedAttest> HostRoot::certify_authkey(ByteView qualifying) {
    return hosttpm::certify_authkey(*tpm_, auth_, qualifying, cfg_.authkey_pcrs);
}

ProtectedBytes HostRoot::ledger_mac_key() const {
    static constexpr char kLabel[] = "libvtpm ledger mac v1";
    ProtectedBytes key(32);
    unsigned int n = 0;
    HMAC(EVP_sha256(), auth_.data(), static_cast<int>(auth_.size()), reinterpret_cast<const unsigned char*>(kLabel),
         sizeof kLabel - 1, key.data(), &n);
    return key;
}

}  // namespace vtpm::issuance
