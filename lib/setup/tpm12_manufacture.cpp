// TPM 1.2 manufacturing, the sequence swtpm_setup runs without --tpm2:
// physical presence, enable, activate, TPM_CreateEndorsementKeyPair,
// optionally TPM_TakeOwnership (OIAP-authorised, secrets OAEP-encrypted to
// the EK), certificates in NV with the TCG stored-certificate header, and
// the NV lock.
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <cstring>

#include "tpm/public_key.hpp"
#include "setup/manufacture.hpp"

namespace vtpm::setup {

namespace {

constexpr uint16_t kTagRquCommand = 0x00c1;
constexpr uint16_t kTagRquAuth1Command = 0x00c2;
constexpr uint32_t kOrdOiap = 0x0a;
constexpr uint32_t kOrdTakeOwnership = 0x0d;
constexpr uint32_t kOrdPhysicalEnable = 0x6f;
constexpr uint32_t kOrdPhysicalSetDeactivated = 0x72;
constexpr uint32_t kOrdCreateEndorsementKeyPair = 0x78;
constexpr uint32_t kOrdNvDefineSpace = 0xcc;
constexpr uint32_t kOrdNvWriteValue = 0xcd;
constexpr uint32_t kTscOrdPhysicalPresence = 0x4000000a;
constexpr uint16_t kPhysicalPresenceCmdEnable = 0x0020;
constexpr uint16_t kPhysicalPresencePresent = 0x0008;
constexpr uint32_t kNvIndexDBit = 0x10000000;
constexpr uint32_t kNvIndexEkCert = 0xf000;
constexpr uint32_t kNvIndexPlatformCert = 0xf002;
constexpr uint32_t kNvIndexLock = 0xffffffff;
constexpr uint32_t kNvPerOwnerRead = 0x00020000;
constexpr uint32_t kNvPerOwnerWrite = 0x00000002;

Bytes header(uint16_t tag, uint32_t ord) {
    Bytes b;
    put_be16(b, tag);
    put_be32(b, 0);
    put_be32(b, ord);
    return b;
}

Bytes finish(Bytes b) {
    store_be32(b.data() + 2, static_cast<uint32_t>(b.size()));
    return b;
}

Result<Bytes> call(engine::Engine& e, Bytes cmd, const char* what) {
    Bytes rsp = e.command(finish(std::move(cmd)));
    if (rsp.size() < 10) return make_error(rc::kFail, std::string(what) + ": short response");
    const uint32_t code = load_be32(rsp.data() + 6);
    if (code != 0) return make_error(rc::kFail, std::string(what) + " failed: TPM error " + hex32(code));
    return rsp;
}

// TPM_KEY_PARMS of a 2048-bit RSA key with OAEP-SHA1 encryption, no signing.
void put_rsa_key_parms(Bytes& b) {
    put_be32(b, 1);       // TPM_ALG_RSA
    put_be16(b, 3);       // TPM_ES_RSAESOAEP_SHA1_MGF1
    put_be16(b, 1);       // TPM_SS_NONE
    put_be32(b, 12);      // parmSize
    put_be32(b, 2048);    // keyLength
    put_be32(b, 2);       // numPrimes
    put_be32(b, 0);       // exponentSize: default 65537
}

Result<Bytes> create_ek(engine::Engine& e) {
    Bytes cmd = header(kTagRquCommand, kOrdCreateEndorsementKeyPair);
    uint8_t anti_replay[20];
    if (RAND_bytes(anti_replay, sizeof(anti_replay)) != 1) return make_error(rc::kFail, "no random bytes");
    cmd.insert(cmd.end(), anti_replay, anti_replay + sizeof(anti_replay));
    put_rsa_key_parms(cmd);
    auto rsp = call(e, std::move(cmd), "TPM_CreateEndorsementKeyPair");
    if (!rsp) return rsp.error();
    // header, TPM_KEY_PARMS (24 bytes), TPM_STORE_PUBKEY (length + modulus)
    if (rsp->size() < 38 + 256 || load_be32(rsp->data() + 34) != 256)
        return make_error(rc::kFail, "TPM_CreateEndorsementKeyPair: unexpected public key layout");
    return Bytes(rsp->begin() + 38, rsp->begin() + 38 + 256);
}

Result<Bytes> oaep_encrypt(EVP_PKEY* ek, ByteView secret) {
    vtpm::PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek, nullptr));
    char label[] = "TCPA";
    void* label_copy = OPENSSL_memdup(label, 4);
    if (!ctx || !label_copy || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha1()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha1()) != 1 ||
        EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label_copy, 4) != 1) {
        OPENSSL_free(label_copy);
        return make_error(rc::kFail, vtpm::ossl_error("could not set up OAEP encryption"));
    }
    size_t n = 0;
    if (EVP_PKEY_encrypt(ctx.get(), nullptr, &n, secret.data(), secret.size()) != 1)
        return make_error(rc::kFail, vtpm::ossl_error("OAEP encryption failed"));
    Bytes out(n);
    if (EVP_PKEY_encrypt(ctx.get(), out.data(), &n, secret.data(), secret.size()) != 1)
        return make_error(rc::kFail, vtpm::ossl_error("OAEP encryption failed"));
    out.resize(n);
    return out;
}

Result<void> take_ownership(engine::Engine& e, EVP_PKEY* ek, ByteView owner_auth, ByteView srk_auth) {
    auto enc_owner = oaep_encrypt(ek, owner_auth);
    auto enc_srk = oaep_encrypt(ek, srk_auth);
    if (!enc_owner) return enc_owner.error();
    if (!enc_srk) return enc_srk.error();
    auto oiap = call(e, header(kTagRquCommand, kOrdOiap), "TPM_OIAP");
    if (!oiap) return oiap.error();
    if (oiap->size() < 34) return make_error(rc::kFail, "TPM_OIAP: short response");
    const uint32_t auth_handle = load_be32(oiap->data() + 10);
    const uint8_t* nonce_even = oiap->data() + 14;

    Bytes cmd = header(kTagRquAuth1Command, kOrdTakeOwnership);
    put_be16(cmd, 5);  // TPM_PID_OWNER
    put_be32(cmd, static_cast<uint32_t>(enc_owner->size()));
    cmd.insert(cmd.end(), enc_owner->begin(), enc_owner->end());
    put_be32(cmd, static_cast<uint32_t>(enc_srk->size()));
    cmd.insert(cmd.end(), enc_srk->begin(), enc_srk->end());
    // TPM_KEY12 of the SRK: storage key, authorisation always.
    put_be16(cmd, 0x0028);
    put_be16(cmd, 0);
    put_be16(cmd, 0x0011);  // TPM_KEY_STORAGE
    put_be32(cmd, 0);       // keyFlags
    cmd.push_back(0x01);    // TPM_AUTH_ALWAYS
    put_rsa_key_parms(cmd);
    put_be32(cmd, 0);  // PCRInfoSize
    put_be32(cmd, 0);  // pubKey
    put_be32(cmd, 0);  // encData

    // inParamDigest = SHA1(ordinal || parameters); authorisation HMAC'd with the owner secret.
    uint8_t digest[SHA_DIGEST_LENGTH];
    SHA1(cmd.data() + 6, cmd.size() - 6, digest);
    uint8_t nonce_odd[SHA_DIGEST_LENGTH];
    if (RAND_bytes(nonce_odd, sizeof(nonce_odd)) != 1) return make_error(rc::kFail, "no random bytes");
    const uint8_t continue_session = 0;
    Bytes mac_in(digest, digest + sizeof(digest));
    mac_in.insert(mac_in.end(), nonce_even, nonce_even + SHA_DIGEST_LENGTH);
    mac_in.insert(mac_in.end(), nonce_odd, nonce_odd + sizeof(nonce_odd));
    mac_in.push_back(continue_session);
    uint8_t mac[SHA_DIGEST_LENGTH];
    unsigned mac_len = sizeof(mac);
    if (!HMAC(EVP_sha1(), owner_auth.data(), static_cast<int>(owner_auth.size()), mac_in.data(), mac_in.size(), mac,
              &mac_len))
        return make_error(rc::kFail, "HMAC failed");
    put_be32(cmd, auth_handle);
    cmd.insert(cmd.end(), nonce_odd, nonce_odd + sizeof(nonce_odd));
    cmd.push_back(continue_session);
    cmd.insert(cmd.end(), mac, mac + mac_len);
    auto rsp = call(e, std::move(cmd), "TPM_TakeOwnership");
    if (!rsp) return rsp.error();
    return {};
}

Result<void> nv_define(engine::Engine& e, uint32_t index, uint32_t attrs, uint32_t size) {
    Bytes cmd = header(kTagRquCommand, kOrdNvDefineSpace);
    put_be16(cmd, 0x0018);  // TPM_TAG_NV_DATA_PUBLIC
    put_be32(cmd, index);
    for (int i = 0; i < 2; ++i) {  // pcrInfoRead, pcrInfoWrite: no PCRs, all localities
        put_be16(cmd, 3);
        cmd.insert(cmd.end(), {0, 0, 0, 0x1f});
        cmd.insert(cmd.end(), 20, 0);
    }
    put_be16(cmd, 0x0017);  // TPM_TAG_NV_ATTRIBUTES
    put_be32(cmd, attrs);
    cmd.insert(cmd.end(), {0, 0, 0});  // bReadSTClear, bWriteSTClear, bWriteDefine
    put_be32(cmd, size);
    cmd.insert(cmd.end(), 20, 0);  // encAuth
    auto rsp = call(e, std::move(cmd), index == kNvIndexLock ? "TPM_NV_DefineSpace(lock)" : "TPM_NV_DefineSpace");
    if (!rsp) return rsp.error();
    return {};
}

Result<void> nv_store_cert(engine::Engine& e, uint32_t index, ByteView der) {
    // TCG_PCCLIENT_STORED_FULL_CERT: tag 0x1001, certType 0, size, tag 0x1002, DER.
    Bytes data;
    put_be16(data, 0x1001);
    data.push_back(0);
    put_be16(data, static_cast<uint16_t>(der.size() + 2));
    put_be16(data, 0x1002);
    data.insert(data.end(), der.begin(), der.end());
    if (auto r = nv_define(e, index, kNvPerOwnerRead | kNvPerOwnerWrite, static_cast<uint32_t>(data.size())); !r)
        return r;
    Bytes cmd = header(kTagRquCommand, kOrdNvWriteValue);
    put_be32(cmd, index);
    put_be32(cmd, 0);
    put_be32(cmd, static_cast<uint32_t>(data.size()));
    cmd.insert(cmd.end(), data.begin(), data.end());
    auto rsp = call(e, std::move(cmd), "TPM_NV_WriteValue");
    if (!rsp) return rsp.error();
    return {};
}

}  // namespace

Result<ManufactureReport> manufacture_tpm12(engine::Engine& e, const ManufactureOptions& opt,
                                            x509::CertAuthority* issuer) {
    ManufactureReport rep;
    if ((opt.ek_cert || opt.platform_cert) && !issuer)
        return make_error(rc::kBadParameter, "certificates requested but no certificate issuer configured");
    {
        Bytes pp = header(kTagRquCommand, kTscOrdPhysicalPresence);
        put_be16(pp, kPhysicalPresenceCmdEnable);
        if (auto r = call(e, pp, "TSC_PhysicalPresence(CMD_ENABLE)"); !r) return r.error();
        pp = header(kTagRquCommand, kTscOrdPhysicalPresence);
        put_be16(pp, kPhysicalPresencePresent);
        if (auto r = call(e, pp, "TSC_PhysicalPresence(PRESENT)"); !r) return r.error();
        if (auto r = call(e, header(kTagRquCommand, kOrdPhysicalEnable), "TPM_PhysicalEnable"); !r) return r.error();
        Bytes deact = header(kTagRquCommand, kOrdPhysicalSetDeactivated);
        deact.push_back(0);
        if (auto r = call(e, deact, "TPM_PhysicalSetDeactivated"); !r) return r.error();
    }
    if (opt.create_ek) {
        auto modulus = create_ek(e);
        if (!modulus) return modulus.error();
        rep.events.push_back("Successfully created EK.");
        auto ek = tpm::pkey_from_rsa_modulus(*modulus);
        if (!ek) return ek.error();
        if (opt.take_ownership) {
            if (auto r = take_ownership(e, ek->get(), opt.owner_auth, opt.srk_auth); !r) return r.error();
            rep.events.push_back("Successfully took ownership of the TPM.");
        }
        auto info = tpm_info(e);
        if (!info) return info.error();
        for (auto kind : {x509::CertKind::Ek, x509::CertKind::Platform}) {
            const bool ek_kind = kind == x509::CertKind::Ek;
            if (!(ek_kind ? opt.ek_cert : opt.platform_cert)) continue;
            x509::CertRequest req;
            req.kind = kind;
            req.subject_key = ek->get();
            req.tpm2 = false;
            req.spec = info->first;
            req.tpm = info->second;
            req.platform = opt.platform;
            req.days = opt.cert_days;
            auto der = issuer->issue(req);
            if (!der) return der.error();
            const uint32_t index = kNvIndexDBit | (ek_kind ? kNvIndexEkCert : kNvIndexPlatformCert);
            if (auto r = nv_store_cert(e, index, *der); !r) return r.error();
            rep.events.push_back(std::string("Successfully created NVRAM area ") + hex32(index) + " for the " +
                                 (ek_kind ? "EK" : "platform") + " certificate.");
            rep.certs.push_back({kind, ek_kind ? "rsa2048" : "platform", index, std::move(*der)});
        }
    }
    if (opt.lock_nvram) {
        if (auto r = nv_define(e, kNvIndexLock, 0, 0); !r) return r.error();
        rep.events.push_back("Successfully locked NVRAM access.");
    }
    return rep;
}

}  // namespace vtpm::setup
