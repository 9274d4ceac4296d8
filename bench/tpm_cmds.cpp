#include "tpm_cmds.hpp"

#include <tss2/tss2_mu.h>

#include <cstring>

namespace bench {
namespace {

// Builds header + handles + (password session) + parameters; size fixed up at the end.
class Cmd {
public:
    Cmd(TPM2_CC cc, bool sessions) : sessions_(sessions) {
        buf_.resize(4096);
        off_ = 10;
        cc_ = cc;
    }
    Cmd& handle(TPM2_HANDLE h) {
        Tss2_MU_UINT32_Marshal(h, buf_.data(), buf_.size(), &off_);
        return *this;
    }
    // Empty-password session (TPM_RS_PW), placed after the handles.
    Cmd& password_auth() {
        TPMS_AUTH_COMMAND a{};
        a.sessionHandle = TPM2_RS_PW;
        uint8_t tmp[64];
        size_t n = 0;
        Tss2_MU_TPMS_AUTH_COMMAND_Marshal(&a, tmp, sizeof tmp, &n);
        Tss2_MU_UINT32_Marshal(static_cast<uint32_t>(n), buf_.data(), buf_.size(), &off_);
        std::memcpy(buf_.data() + off_, tmp, n);
        off_ += n;
        return *this;
    }
    template <typename F>
    Cmd& param(F&& marshal) {
        marshal(buf_.data(), buf_.size(), &off_);
        return *this;
    }
    Bytes done() {
        size_t h = 0;
        Tss2_MU_UINT16_Marshal(sessions_ ? TPM2_ST_SESSIONS : TPM2_ST_NO_SESSIONS, buf_.data(), buf_.size(), &h);
        Tss2_MU_UINT32_Marshal(static_cast<uint32_t>(off_), buf_.data(), buf_.size(), &h);
        Tss2_MU_UINT32_Marshal(cc_, buf_.data(), buf_.size(), &h);
        buf_.resize(off_);
        return buf_;
    }

private:
    Bytes buf_;
    size_t off_ = 0;
    TPM2_CC cc_;
    bool sessions_;
};

TPML_PCR_SELECTION selection(uint32_t mask) {
    TPML_PCR_SELECTION s{};
    s.count = 1;
    s.pcrSelections[0].hash = TPM2_ALG_SHA256;
    s.pcrSelections[0].sizeofSelect = 3;
    for (int i = 0; i < 3; ++i) s.pcrSelections[0].pcrSelect[i] = static_cast<uint8_t>(mask >> (8 * i));
    return s;
}

Bytes create_primary(const TPM2B_PUBLIC& pub) {
    TPM2B_SENSITIVE_CREATE sens{};
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION pcrs{};
    return Cmd(TPM2_CC_CreatePrimary, true)
        .handle(TPM2_RH_OWNER)
        .password_auth()
        .param([&](uint8_t* b, size_t n, size_t* o) { Tss2_MU_TPM2B_SENSITIVE_CREATE_Marshal(&sens, b, n, o); })
        .param([&](uint8_t* b, size_t n, size_t* o) { Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, b, n, o); })
        .param([&](uint8_t* b, size_t n, size_t* o) { Tss2_MU_TPM2B_DATA_Marshal(&outside, b, n, o); })
        .param([&](uint8_t* b, size_t n, size_t* o) { Tss2_MU_TPML_PCR_SELECTION_Marshal(&pcrs, b, n, o); })
        .done();
}

}  // namespace

Bytes get_random(uint16_t n) {
    return Cmd(TPM2_CC_GetRandom, false)
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_UINT16_Marshal(n, b, s, o); })
        .done();
}

Bytes pcr_extend(TPM2_HANDLE pcr, uint8_t fill) {
    TPML_DIGEST_VALUES d{};
    d.count = 1;
    d.digests[0].hashAlg = TPM2_ALG_SHA256;
    std::memset(d.digests[0].digest.sha256, fill, sizeof d.digests[0].digest.sha256);
    return Cmd(TPM2_CC_PCR_Extend, true)
        .handle(pcr)
        .password_auth()
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_TPML_DIGEST_VALUES_Marshal(&d, b, s, o); })
        .done();
}

Bytes pcr_read(uint32_t mask) {
    TPML_PCR_SELECTION sel = selection(mask);
    return Cmd(TPM2_CC_PCR_Read, false)
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, b, s, o); })
        .done();
}

Bytes create_primary_ecc(uint32_t variant) {
    TPM2B_PUBLIC pub{};
    pub.publicArea.type = TPM2_ALG_ECC;
    pub.publicArea.nameAlg = TPM2_ALG_SHA256;
    pub.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                      TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    auto& e = pub.publicArea.parameters.eccDetail;
    e.symmetric.algorithm = TPM2_ALG_NULL;
    e.scheme.scheme = TPM2_ALG_ECDSA;
    e.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    e.curveID = TPM2_ECC_NIST_P256;
    e.kdf.scheme = TPM2_ALG_NULL;
    pub.publicArea.unique.ecc.x.size = sizeof variant;
    std::memcpy(pub.publicArea.unique.ecc.x.buffer, &variant, sizeof variant);
    return create_primary(pub);
}

Bytes create_primary_rsa(uint32_t variant) {
    TPM2B_PUBLIC pub{};
    pub.publicArea.type = TPM2_ALG_RSA;
    pub.publicArea.nameAlg = TPM2_ALG_SHA256;
    pub.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                      TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    auto& r = pub.publicArea.parameters.rsaDetail;
    r.symmetric.algorithm = TPM2_ALG_AES;
    r.symmetric.keyBits.aes = 128;
    r.symmetric.mode.aes = TPM2_ALG_CFB;
    r.scheme.scheme = TPM2_ALG_NULL;
    r.keyBits = 2048;
    pub.publicArea.unique.rsa.size = sizeof variant;
    std::memcpy(pub.publicArea.unique.rsa.buffer, &variant, sizeof variant);
    return create_primary(pub);
}

Bytes flush_context(TPM2_HANDLE h) {
    return Cmd(TPM2_CC_FlushContext, false)
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_UINT32_Marshal(h, b, s, o); })
        .done();
}

Bytes quote(TPM2_HANDLE key, uint32_t mask) {
    TPM2B_DATA nonce{};
    nonce.size = 16;
    std::memset(nonce.buffer, 0x5a, 16);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;
    TPML_PCR_SELECTION sel = selection(mask);
    return Cmd(TPM2_CC_Quote, true)
        .handle(key)
        .password_auth()
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_TPM2B_DATA_Marshal(&nonce, b, s, o); })
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_TPMT_SIG_SCHEME_Marshal(&scheme, b, s, o); })
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, b, s, o); })
        .done();
}

Bytes nv_define(TPM2_HANDLE index, uint16_t size) {
    TPM2B_AUTH auth{};
    TPM2B_NV_PUBLIC pub{};
    pub.nvPublic.nvIndex = index;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    pub.nvPublic.attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD;
    pub.nvPublic.dataSize = size;
    return Cmd(TPM2_CC_NV_DefineSpace, true)
        .handle(TPM2_RH_OWNER)
        .password_auth()
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_TPM2B_AUTH_Marshal(&auth, b, s, o); })
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_TPM2B_NV_PUBLIC_Marshal(&pub, b, s, o); })
        .done();
}

Bytes nv_write(TPM2_HANDLE index, uint16_t size, uint8_t fill) {
    TPM2B_MAX_NV_BUFFER data{};
    data.size = size;
    std::memset(data.buffer, fill, size);
    return Cmd(TPM2_CC_NV_Write, true)
        .handle(TPM2_RH_OWNER)
        .handle(index)
        .password_auth()
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_TPM2B_MAX_NV_BUFFER_Marshal(&data, b, s, o); })
        .param([&](uint8_t* b, size_t s, size_t* o) { Tss2_MU_UINT16_Marshal(0, b, s, o); })
        .done();
}

uint32_t response_code(const Bytes& rsp) {
    uint32_t rc = 0xffffffff;
    size_t off = 6;
    Tss2_MU_UINT32_Unmarshal(rsp.data(), rsp.size(), &off, &rc);
    return rc;
}

TPM2_HANDLE response_handle(const Bytes& rsp) {
    uint32_t h = 0;
    size_t off = 10;
    Tss2_MU_UINT32_Unmarshal(rsp.data(), rsp.size(), &off, &h);
    return h;
}

}  // namespace bench
