#include "tpm/commands.hpp"

#include <openssl/crypto.h>

#include "tpm/mu.hpp"
#include "util/hot.hpp"

#include <cstring>

namespace vtpm::tpm {

namespace {

// TCG EK Credential Profile policies: PolicySecret(TPM_RH_ENDORSEMENT) with
// SHA-256 (policy A, low range) and SHA-384 (policy B, high range).
constexpr uint8_t kPolicyA[32] = {0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
                                  0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
                                  0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};
constexpr uint8_t kPolicyBSha384[48] = {0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc,
                                        0xf5, 0xfd, 0x3a, 0x1a, 0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4,
                                        0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca, 0xcb, 0x47, 0xba, 0x09,
                                        0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12};

// A command under construction: header, handles, optional password
// session, parameters; the size is patched in by done().
class Cmd {
public:
    Cmd(uint32_t cc, bool sessions) : sessions_(sessions) {
        put_be16(b_, sessions ? TPM2_ST_SESSIONS : TPM2_ST_NO_SESSIONS);
        put_be32(b_, 0);
        put_be32(b_, cc);
    }
    Cmd& handle(uint32_t h) { put_be32(b_, h); return *this; }
    // Empty-password session (the hierarchies of a fresh vTPM have no auth).
    Cmd& password_session() {
        put_be32(b_, 9);
        put_be32(b_, TPM2_RS_PW);
        put_be16(b_, 0);
        b_.push_back(0);
        put_be16(b_, 0);
        return *this;
    }
    Cmd& u16(uint16_t v) { put_be16(b_, v); return *this; }
    Cmd& u32(uint32_t v) { put_be32(b_, v); return *this; }
    Cmd& raw(ByteView v) { b_.insert(b_.end(), v.begin(), v.end()); return *this; }
    template <typename T, typename F>
    Cmd& mu(const T& value, F marshal) {
        uint8_t buf[sizeof(T) + 16];
        size_t off = 0;
        if (marshal(&value, buf, sizeof(buf), &off) == TSS2_RC_SUCCESS) raw(ByteView(buf, off));
        return *this;
    }
    Bytes done() {
        (void)sessions_;
        store_be32(b_.data() + 2, static_cast<uint32_t>(b_.size()));
        return std::move(b_);
    }

private:
    Bytes b_;
    bool sessions_;
};

// The authorisation area of ActivateCredential: a password session, then
// `session` with an empty nonce and HMAC.
void put_session_area(Cmd& c, uint32_t session) {
    Bytes area;
    put_be32(area, TPM2_RS_PW);
    put_be16(area, 0);
    area.push_back(0);
    put_be16(area, 0);
    put_be32(area, session);
    put_be16(area, 0);
    area.push_back(0);  // continueSession clear: the session ends with the command
    put_be16(area, 0);
    c.u32(static_cast<uint32_t>(area.size())).raw(area);
}

TPM2B_PUBLIC wrap(const TPMT_PUBLIC& p) {
    TPM2B_PUBLIC w{};
    w.publicArea = p;
    return w;
}

void set_policy(TPMT_PUBLIC& p, const uint8_t* policy, uint16_t n) {
    p.authPolicy.size = n;
    std::memcpy(p.authPolicy.buffer, policy, n);
}

// Where the parameters of a session-tagged response start (after the
// response handles and parameterSize).
Result<size_t> params_offset(ByteView rsp, size_t handles) {
    if (rsp.size() < 10) return make_error(rc::kFail, "TPM response shorter than its header");
    const uint32_t code = load_be32(rsp.data() + 6);
    if (code != TPM2_RC_SUCCESS) return make_error(rc::kFail, "TPM error " + hex32(code));
    size_t off = 10 + 4 * handles;
    if (load_be16(rsp.data()) == TPM2_ST_SESSIONS) off += 4;
    if (rsp.size() < off) return make_error(rc::kFail, "TPM response too short");
    return off;
}

}  // namespace

EkLayout ek_layout(EkKind kind) {
    switch (kind) {
        case EkKind::Rsa2048: return {kEkRsa2048Handle, kNvRsa2048EkCert, kNvRsa2048EkTemplate, "rsa2048"};
        case EkKind::EccP256: return {kEkEccP256Handle, kNvEccP256EkCert, kNvEccP256EkTemplate, "secp256r1"};
        case EkKind::Rsa3072: return {kEkRsa3072Handle, kNvRsa3072EkCert, kNvRsa3072EkTemplate, "rsa3072"};
    }
    return {};
}

TPMT_PUBLIC ek_template(EkKind kind, bool allow_signing, bool decryption) {
    TPMT_PUBLIC p{};
    TPMA_OBJECT attrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                        TPMA_OBJECT_ADMINWITHPOLICY;
    if (allow_signing) {
        attrs |= TPMA_OBJECT_SIGN_ENCRYPT;
        if (decryption) attrs |= TPMA_OBJECT_DECRYPT;
    } else {
        attrs |= TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    }
    TPMT_SYM_DEF_OBJECT sym{};
    if (allow_signing) sym.algorithm = TPM2_ALG_NULL;
    else {
        sym.algorithm = TPM2_ALG_AES;
        sym.keyBits.aes = kind == EkKind::Rsa3072 ? 256 : 128;
        sym.mode.aes = TPM2_ALG_CFB;
    }
    switch (kind) {
        case EkKind::Rsa2048:
        case EkKind::Rsa3072: {
            const bool high = kind == EkKind::Rsa3072;
            p.type = TPM2_ALG_RSA;
            p.nameAlg = high ? TPM2_ALG_SHA384 : TPM2_ALG_SHA256;
            if (high) attrs |= TPMA_OBJECT_USERWITHAUTH;
            high ? set_policy(p, kPolicyBSha384, sizeof(kPolicyBSha384)) : set_policy(p, kPolicyA, sizeof(kPolicyA));
            p.parameters.rsaDetail.symmetric = sym;
            p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
            p.parameters.rsaDetail.keyBits = high ? 3072 : 2048;
            p.parameters.rsaDetail.exponent = 0;
            // Low range: a zero-filled unique of the modulus size; high: empty.
            p.unique.rsa.size = high ? 0 : 256;
            break;
        }
        case EkKind::EccP256:
            p.type = TPM2_ALG_ECC;
            p.nameAlg = TPM2_ALG_SHA256;
            set_policy(p, kPolicyA, sizeof(kPolicyA));
            p.parameters.eccDetail.symmetric = sym;
            p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
            p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
            p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
            p.unique.ecc.x.size = 32;
            p.unique.ecc.y.size = 32;
            break;
    }
    p.objectAttributes = attrs;
    return p;
}

TPMT_PUBLIC spk_template(bool ecc, unsigned rsa_bits) {
    TPMT_PUBLIC p{};
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                         TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    TPMT_SYM_DEF_OBJECT sym{};
    sym.algorithm = TPM2_ALG_AES;
    sym.mode.aes = TPM2_ALG_CFB;
    if (ecc) {
        p.type = TPM2_ALG_ECC;
        p.nameAlg = TPM2_ALG_SHA384;
        sym.keyBits.aes = 256;
        p.parameters.eccDetail.symmetric = sym;
        p.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
        p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        p.unique.ecc.x.size = 48;
        p.unique.ecc.y.size = 48;
    } else {
        p.type = TPM2_ALG_RSA;
        p.nameAlg = TPM2_ALG_SHA256;
        sym.keyBits.aes = rsa_bits == 3072 ? 256 : 128;
        p.parameters.rsaDetail.symmetric = sym;
        p.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        p.parameters.rsaDetail.keyBits = static_cast<TPMI_RSA_KEY_BITS>(rsa_bits);
        p.unique.rsa.size = static_cast<uint16_t>(rsa_bits / 8);
    }
    return p;
}

Bytes marshal_tpmt_public(const TPMT_PUBLIC& pub) {
    uint8_t buf[sizeof(TPMT_PUBLIC)];
    size_t off = 0;
    if (mu::TPMT_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) return {};
    return Bytes(buf, buf + off);
}

Bytes create_primary(uint32_t hierarchy, const TPMT_PUBLIC& tmpl) {
    const uint8_t empty_sensitive[] = {0x00, 0x04, 0x00, 0x00, 0x00, 0x00};
    return Cmd(TPM2_CC_CreatePrimary, true)
        .handle(hierarchy)
        .password_session()
        .raw(empty_sensitive)
        .mu(wrap(tmpl), mu::TPM2B_PUBLIC_Marshal)
        .u16(0)   // outsideInfo
        .u32(0)   // creationPCR: no selection
        .done();
}

Bytes evict_control(uint32_t object, uint32_t persistent) {
    return Cmd(TPM2_CC_EvictControl, true)
        .handle(TPM2_RH_OWNER)
        .handle(object)
        .password_session()
        .u32(persistent)
        .done();
}

Bytes start_policy_session(ByteView nonce_caller) {
    Cmd c(TPM2_CC_StartAuthSession, false);
    c.handle(TPM2_RH_NULL).handle(TPM2_RH_NULL);  // no salt key, no bind
    c.u16(static_cast<uint16_t>(nonce_caller.size())).raw(nonce_caller);
    c.u16(0);  // encryptedSalt
    Bytes type{TPM2_SE_POLICY};
    c.raw(type);
    c.u16(TPM2_ALG_NULL);  // symmetric: none
    c.u16(TPM2_ALG_SHA256);
    return c.done();
}

Bytes policy_secret_endorsement(uint32_t session) {
    return Cmd(TPM2_CC_PolicySecret, true)
        .handle(TPM2_RH_ENDORSEMENT)
        .handle(session)
        .password_session()
        .u16(0)   // nonceTPM
        .u16(0)   // cpHashA
        .u16(0)   // policyRef
        .u32(0)   // expiration
        .done();
}

Bytes activate_credential(uint32_t activate, uint32_t key, uint32_t session, ByteView credential_blob,
                          ByteView encrypted_secret) {
    Cmd c(TPM2_CC_ActivateCredential, true);
    c.handle(activate).handle(key);
    // Two authorisations: the empty password for the activated key, then
    // the policy session for the EK (no HMAC: nothing in its policy needs one).
    put_session_area(c, session);
    c.raw(credential_blob).raw(encrypted_secret);
    return c.done();
}

Bytes flush_context(uint32_t handle) { return Cmd(TPM2_CC_FlushContext, false).u32(handle).done(); }

Bytes nv_define_space(uint32_t index, uint32_t attributes, uint16_t size, uint32_t auth) {
    TPM2B_NV_PUBLIC pub{};
    pub.nvPublic.nvIndex = index;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    pub.nvPublic.attributes = attributes;
    pub.nvPublic.dataSize = size;
    return Cmd(TPM2_CC_NV_DefineSpace, true)
        .handle(auth)
        .password_session()
        .u16(0)  // empty auth value
        .mu(pub, mu::TPM2B_NV_PUBLIC_Marshal)
        .done();
}

Bytes nv_write(uint32_t index, ByteView data, uint16_t offset, uint32_t auth) {
    return Cmd(TPM2_CC_NV_Write, true)
        .handle(auth)
        .handle(index)
        .password_session()
        .u16(static_cast<uint16_t>(data.size()))
        .raw(data)
        .u16(offset)
        .done();
}

Bytes nv_undefine_space(uint32_t index, uint32_t auth) {
    return Cmd(TPM2_CC_NV_UndefineSpace, true).handle(auth).handle(index).password_session().done();
}

Bytes nv_write_lock(uint32_t index) {
    return Cmd(TPM2_CC_NV_WriteLock, true).handle(TPM2_RH_PLATFORM).handle(index).password_session().done();
}

Bytes nv_read_public(uint32_t index) { return Cmd(TPM2_CC_NV_ReadPublic, false).handle(index).done(); }

Bytes nv_read(uint32_t index, uint16_t size, uint16_t offset) {
    return Cmd(TPM2_CC_NV_Read, true).handle(index).handle(index).password_session().u16(size).u16(offset).done();
}

Bytes get_random(uint16_t bytes) { return Cmd(TPM2_CC_GetRandom, false).u16(bytes).done(); }

Bytes read_public(uint32_t handle) { return Cmd(TPM2_CC_ReadPublic, false).handle(handle).done(); }

Bytes get_capability(uint32_t cap, uint32_t property, uint32_t count) {
    return Cmd(TPM2_CC_GetCapability, false).u32(cap).u32(property).u32(count).done();
}

Bytes pcr_allocate(const TPML_PCR_SELECTION& sel) {
    return Cmd(TPM2_CC_PCR_Allocate, true)
        .handle(TPM2_RH_PLATFORM)
        .password_session()
        .mu(sel, mu::TPML_PCR_SELECTION_Marshal)
        .done();
}

Bytes shutdown(uint16_t su) { return Cmd(TPM2_CC_Shutdown, false).u16(su).done(); }

Bytes startup(uint16_t su) { return Cmd(TPM2_CC_Startup, false).u16(su).done(); }

Bytes tpm12_startup(uint16_t type) {
    Bytes out;
    put_be16(out, 0x00c1);  // TPM_TAG_RQU_COMMAND
    put_be32(out, 12);
    put_be32(out, 0x99);  // TPM_ORD_Startup
    put_be16(out, type);
    return out;
}

Bytes pcr_read(const TPML_PCR_SELECTION& sel) {
    return Cmd(TPM2_CC_PCR_Read, false).mu(sel, mu::TPML_PCR_SELECTION_Marshal).done();
}

Bytes pcr_extend(uint32_t pcr, const TPML_DIGEST_VALUES& digests) {
    return Cmd(TPM2_CC_PCR_Extend, true).handle(pcr).password_session()
        .mu(digests, mu::TPML_DIGEST_VALUES_Marshal).done();
}

Bytes quote(uint32_t key, ByteView qualifying, const TPML_PCR_SELECTION& sel) {
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    return Cmd(TPM2_CC_Quote, true).handle(key).password_session()
        .u16(static_cast<uint16_t>(qualifying.size())).raw(qualifying)
        .mu(scheme, mu::TPMT_SIG_SCHEME_Marshal)
        .mu(sel, mu::TPML_PCR_SELECTION_Marshal).done();
}

uint32_t response_code(ByteView rsp) { return rsp.size() < 10 ? 0xffffffffu : load_be32(rsp.data() + 6); }

VTPM_HOT bool has_send_command_prefix(ByteView b) {
    return b.size() >= 4 && load_be16(b.data()) != TPM2_ST_NO_SESSIONS && load_be16(b.data()) != TPM2_ST_SESSIONS &&
           load_be32(b.data()) == 8;
}

VTPM_HOT std::optional<size_t> command_frame_size(ByteView b, bool tpm2, size_t max) {
    if (b.size() < 10) return std::nullopt;
    size_t prefix = 0;
    if (tpm2 && has_send_command_prefix(b)) {
        if (b.size() < kSendCommandPrefix + 6) return std::nullopt;
        prefix = kSendCommandPrefix;
    }
    const size_t size = load_be32(b.data() + prefix + 2);
    if (size < 10 || size > max) return b.size();
    if (b.size() < prefix + size) return std::nullopt;
    return prefix + size;
}

VTPM_HOT uint32_t command_code(ByteView cmd) { return cmd.size() < 10 ? 0 : load_be32(cmd.data() + 6); }

Bytes response_header(uint16_t tag, uint32_t rc) {
    Bytes out;
    out.reserve(10);
    put_be16(out, tag);
    put_be32(out, 10);
    put_be32(out, rc);
    return out;
}

Result<CreatedPrimary> parse_create_primary(ByteView rsp) {
    auto off = params_offset(rsp, 1);
    if (!off) return off.error();
    CreatedPrimary out;
    out.handle = load_be32(rsp.data() + 10);
    TPM2B_PUBLIC pub{};
    size_t o = *off;
    if (mu::TPM2B_PUBLIC_Unmarshal(rsp.data(), rsp.size(), &o, &pub) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed CreatePrimary response");
    out.pub = pub.publicArea;
    return out;
}

Result<TPMT_PUBLIC> parse_read_public(ByteView rsp) {
    auto off = params_offset(rsp, 0);
    if (!off) return off.error();
    TPM2B_PUBLIC pub{};
    size_t o = *off;
    if (mu::TPM2B_PUBLIC_Unmarshal(rsp.data(), rsp.size(), &o, &pub) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed ReadPublic response");
    return pub.publicArea;
}

Result<TPMS_NV_PUBLIC> parse_nv_read_public(ByteView rsp) {
    auto off = params_offset(rsp, 0);
    if (!off) return off.error();
    TPM2B_NV_PUBLIC pub{};
    size_t o = *off;
    if (mu::TPM2B_NV_PUBLIC_Unmarshal(rsp.data(), rsp.size(), &o, &pub) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed NV_ReadPublic response");
    return pub.nvPublic;
}

Result<Bytes> parse_nv_read(ByteView rsp) {
    auto off = params_offset(rsp, 0);
    if (!off) return off.error();
    TPM2B_MAX_NV_BUFFER data{};
    size_t o = *off;
    if (mu::TPM2B_MAX_NV_BUFFER_Unmarshal(rsp.data(), rsp.size(), &o, &data) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed NV_Read response");
    return Bytes(data.buffer, data.buffer + data.size);
}

Result<Bytes> parse_get_random(ByteView rsp) {
    auto off = params_offset(rsp, 0);
    if (!off) return off.error();
    TPM2B_DIGEST data{};
    size_t o = *off;
    if (mu::TPM2B_DIGEST_Unmarshal(rsp.data(), rsp.size(), &o, &data) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed GetRandom response");
    return Bytes(data.buffer, data.buffer + data.size);
}

Result<uint32_t> parse_start_auth_session(ByteView rsp) {
    auto off = params_offset(rsp, 1);
    if (!off) return off.error();
    return load_be32(rsp.data() + 10);
}

Result<Bytes> parse_activate_credential(ByteView rsp) {
    auto off = params_offset(rsp, 0);
    if (!off) return off.error();
    TPM2B_DIGEST data{};
    size_t o = *off;
    if (mu::TPM2B_DIGEST_Unmarshal(rsp.data(), rsp.size(), &o, &data) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed ActivateCredential response");
    Bytes out(data.buffer, data.buffer + data.size);
    OPENSSL_cleanse(data.buffer, data.size);
    return out;
}

Result<PcrReadResult> parse_pcr_read(ByteView rsp) {
    auto off = params_offset(rsp, 0);
    if (!off) return off.error();
    PcrReadResult out;
    size_t o = *off + 4;  // pcrUpdateCounter
    if (o > rsp.size() ||
        mu::TPML_PCR_SELECTION_Unmarshal(rsp.data(), rsp.size(), &o, &out.selected) != TSS2_RC_SUCCESS ||
        mu::TPML_DIGEST_Unmarshal(rsp.data(), rsp.size(), &o, &out.values) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed PCR_Read response");
    return out;
}

Result<QuoteResult> parse_quote(ByteView rsp) {
    auto off = params_offset(rsp, 0);
    if (!off) return off.error();
    TPM2B_ATTEST att{};
    QuoteResult out;
    size_t o = *off;
    if (mu::TPM2B_ATTEST_Unmarshal(rsp.data(), rsp.size(), &o, &att) != TSS2_RC_SUCCESS ||
        mu::TPMT_SIGNATURE_Unmarshal(rsp.data(), rsp.size(), &o, &out.signature) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed Quote response");
    out.attest.assign(att.attestationData, att.attestationData + att.size);
    return out;
}

namespace {

Result<TPMS_CAPABILITY_DATA> parse_capability(ByteView rsp) {
    auto off = params_offset(rsp, 0);
    if (!off) return off.error();
    size_t o = *off + 1;  // moreData
    TPMS_CAPABILITY_DATA data{};
    if (o > rsp.size() || mu::TPMS_CAPABILITY_DATA_Unmarshal(rsp.data(), rsp.size(), &o, &data) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "malformed GetCapability response");
    return data;
}

}  // namespace

Result<TPML_PCR_SELECTION> parse_pcr_capability(ByteView rsp) {
    auto d = parse_capability(rsp);
    if (!d) return d.error();
    if (d->capability != TPM2_CAP_PCRS) return make_error(rc::kFail, "GetCapability answered another capability");
    return d->data.assignedPCR;
}

Result<std::vector<uint32_t>> parse_handles_capability(ByteView rsp) {
    auto d = parse_capability(rsp);
    if (!d) return d.error();
    if (d->capability != TPM2_CAP_HANDLES) return make_error(rc::kFail, "GetCapability answered another capability");
    return std::vector<uint32_t>(d->data.handles.handle, d->data.handles.handle + d->data.handles.count);
}

}  // namespace vtpm::tpm
