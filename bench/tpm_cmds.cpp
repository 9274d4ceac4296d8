#include "tpm_cmds.hpp"

#include <tss2/tss2_mu.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

namespace bench {
namespace {

using vtpm::Error;
using vtpm::Result;

Error mu_error(const char* what, TSS2_RC rc) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "tss2-mu: marshalling %s failed (0x%x)", what, rc);
    return vtpm::make_error(vtpm::rc::kFail, buf);
}

// A command under construction: header, handles, authorisation area,
// parameters. Every Tss2_MU_* result is checked; the first failure is kept
// and reported by finish().
class CommandBuilder {
public:
    explicit CommandBuilder(TPM2_CC cc) : cc_(cc), buf_(4096) { off_ = kHeaderSize; }

    CommandBuilder& handle(TPM2_HANDLE h) { return check("handle", Tss2_MU_TPM2_HANDLE_Marshal(h, buf_.data(), buf_.size(), &off_)); }

    /// Authorisation area with one password session (TPM_RS_PW) and an empty
    /// password; switches the tag to TPM_ST_SESSIONS.
    CommandBuilder& password_session() {
        sessions_ = true;
        size_t size_at = off_;
        check("authorizationSize", Tss2_MU_UINT32_Marshal(0, buf_.data(), buf_.size(), &off_));
        TPMS_AUTH_COMMAND auth{};
        auth.sessionHandle = TPM2_RH_PW;
        auth.sessionAttributes = 0;
        check("TPMS_AUTH_COMMAND", Tss2_MU_TPMS_AUTH_COMMAND_Marshal(&auth, buf_.data(), buf_.size(), &off_));
        size_t patch = size_at;
        return check("authorizationSize",
                     Tss2_MU_UINT32_Marshal(static_cast<uint32_t>(off_ - size_at - 4), buf_.data(), buf_.size(), &patch));
    }

    CommandBuilder& u16(uint16_t v) { return check("UINT16", Tss2_MU_UINT16_Marshal(v, buf_.data(), buf_.size(), &off_)); }

    /// Any tss2-mu marshaller taking `const T*`.
    template <typename T>
    CommandBuilder& param(const char* what, TSS2_RC (*marshal)(const T*, uint8_t[], size_t, size_t*), const T& v) {
        return check(what, marshal(&v, buf_.data(), buf_.size(), &off_));
    }

    Result<Bytes> finish() {
        size_t h = 0;
        check("tag", Tss2_MU_TPM2_ST_Marshal(sessions_ ? TPM2_ST_SESSIONS : TPM2_ST_NO_SESSIONS, buf_.data(), buf_.size(), &h));
        check("commandSize", Tss2_MU_UINT32_Marshal(static_cast<uint32_t>(off_), buf_.data(), buf_.size(), &h));
        check("commandCode", Tss2_MU_TPM2_CC_Marshal(cc_, buf_.data(), buf_.size(), &h));
        if (error_) return *error_;
        buf_.resize(off_);
        return std::move(buf_);
    }

private:
    static constexpr size_t kHeaderSize = 10;

    CommandBuilder& check(const char* what, TSS2_RC rc) {
        if (rc != TSS2_RC_SUCCESS && !error_) error_ = mu_error(what, rc);
        return *this;
    }

    TPM2_CC cc_;
    Bytes buf_;
    size_t off_ = 0;
    bool sessions_ = false;
    std::optional<Error> error_;
};

TPML_PCR_SELECTION sha256_selection(uint32_t pcr) {
    TPML_PCR_SELECTION s{};
    s.count = 1;
    s.pcrSelections[0].hash = TPM2_ALG_SHA256;
    s.pcrSelections[0].sizeofSelect = 3;
    s.pcrSelections[0].pcrSelect[pcr / 8] = static_cast<uint8_t>(1u << (pcr % 8));
    return s;
}

// 4 bytes of `variant` as the unique field (big-endian, via tss2-mu).
void put_variant(uint8_t* dst, uint16_t* size, uint32_t variant) {
    size_t off = 0;
    Tss2_MU_UINT32_Marshal(variant, dst, 4, &off);
    *size = 4;
}

TPMA_OBJECT key_attributes(TPMA_OBJECT usage) {
    return TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
           TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | usage;
}

Result<Bytes> create_primary(const TPM2B_PUBLIC& pub) {
    const TPM2B_SENSITIVE_CREATE sensitive{};
    const TPM2B_DATA outside_info{};
    const TPML_PCR_SELECTION creation_pcrs{};
    return CommandBuilder(TPM2_CC_CreatePrimary)
        .handle(TPM2_RH_OWNER)
        .password_session()
        .param("inSensitive", Tss2_MU_TPM2B_SENSITIVE_CREATE_Marshal, sensitive)
        .param("inPublic", Tss2_MU_TPM2B_PUBLIC_Marshal, pub)
        .param("outsideInfo", Tss2_MU_TPM2B_DATA_Marshal, outside_info)
        .param("creationPCR", Tss2_MU_TPML_PCR_SELECTION_Marshal, creation_pcrs)
        .finish();
}

}  // namespace

Result<Bytes> cmd_get_random(uint16_t bytes) { return CommandBuilder(TPM2_CC_GetRandom).u16(bytes).finish(); }

Result<Bytes> cmd_pcr_extend(TPM2_HANDLE pcr, uint8_t fill) {
    TPML_DIGEST_VALUES digests{};
    digests.count = 1;
    digests.digests[0].hashAlg = TPM2_ALG_SHA256;
    std::memset(digests.digests[0].digest.sha256, fill, TPM2_SHA256_DIGEST_SIZE);
    return CommandBuilder(TPM2_CC_PCR_Extend)
        .handle(pcr)
        .password_session()
        .param("digests", Tss2_MU_TPML_DIGEST_VALUES_Marshal, digests)
        .finish();
}

Result<Bytes> cmd_pcr_read(uint32_t pcr) {
    return CommandBuilder(TPM2_CC_PCR_Read)
        .param("pcrSelectionIn", Tss2_MU_TPML_PCR_SELECTION_Marshal, sha256_selection(pcr))
        .finish();
}

Result<Bytes> cmd_create_primary_ecc(uint32_t variant) {
    TPM2B_PUBLIC pub{};
    pub.publicArea.type = TPM2_ALG_ECC;
    pub.publicArea.nameAlg = TPM2_ALG_SHA256;
    pub.publicArea.objectAttributes = key_attributes(TPMA_OBJECT_SIGN_ENCRYPT);
    TPMS_ECC_PARMS& ecc = pub.publicArea.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_NULL;
    ecc.scheme.scheme = TPM2_ALG_ECDSA;
    ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    put_variant(pub.publicArea.unique.ecc.x.buffer, &pub.publicArea.unique.ecc.x.size, variant);
    return create_primary(pub);
}

Result<Bytes> cmd_create_primary_rsa(uint32_t variant) {
    TPM2B_PUBLIC pub{};
    pub.publicArea.type = TPM2_ALG_RSA;
    pub.publicArea.nameAlg = TPM2_ALG_SHA256;
    pub.publicArea.objectAttributes = key_attributes(TPMA_OBJECT_DECRYPT);
    TPMS_RSA_PARMS& rsa = pub.publicArea.parameters.rsaDetail;
    rsa.symmetric.algorithm = TPM2_ALG_AES;
    rsa.symmetric.keyBits.aes = 128;
    rsa.symmetric.mode.aes = TPM2_ALG_CFB;
    rsa.scheme.scheme = TPM2_ALG_NULL;
    rsa.keyBits = 2048;
    rsa.exponent = 0;
    put_variant(pub.publicArea.unique.rsa.buffer, &pub.publicArea.unique.rsa.size, variant);
    return create_primary(pub);
}

Result<Bytes> cmd_flush_context(TPM2_HANDLE handle) {
    return CommandBuilder(TPM2_CC_FlushContext).handle(handle).finish();
}

Result<Bytes> cmd_quote(TPM2_HANDLE key, uint32_t pcr) {
    TPM2B_DATA nonce{};
    nonce.size = 16;
    std::memset(nonce.buffer, 0x5a, nonce.size);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;  // the key's own scheme (ECDSA-SHA256)
    return CommandBuilder(TPM2_CC_Quote)
        .handle(key)
        .password_session()
        .param("qualifyingData", Tss2_MU_TPM2B_DATA_Marshal, nonce)
        .param("inScheme", Tss2_MU_TPMT_SIG_SCHEME_Marshal, scheme)
        .param("PCRselect", Tss2_MU_TPML_PCR_SELECTION_Marshal, sha256_selection(pcr))
        .finish();
}

Result<Bytes> cmd_nv_define(TPM2_HANDLE index, uint16_t size) {
    const TPM2B_AUTH auth{};
    TPM2B_NV_PUBLIC pub{};
    pub.nvPublic.nvIndex = index;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    pub.nvPublic.attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD;  // ordinary index
    pub.nvPublic.dataSize = size;
    return CommandBuilder(TPM2_CC_NV_DefineSpace)
        .handle(TPM2_RH_OWNER)
        .password_session()
        .param("auth", Tss2_MU_TPM2B_AUTH_Marshal, auth)
        .param("publicInfo", Tss2_MU_TPM2B_NV_PUBLIC_Marshal, pub)
        .finish();
}

Result<Bytes> cmd_nv_write(TPM2_HANDLE index, uint16_t size, uint8_t fill) {
    TPM2B_MAX_NV_BUFFER data{};
    data.size = size;
    std::memset(data.buffer, fill, size);
    return CommandBuilder(TPM2_CC_NV_Write)
        .handle(TPM2_RH_OWNER)
        .handle(index)
        .password_session()
        .param("data", Tss2_MU_TPM2B_MAX_NV_BUFFER_Marshal, data)
        .u16(0)  // offset
        .finish();
}

uint32_t response_code(const Bytes& rsp) {
    size_t off = 6;
    UINT32 rc = 0xffffffff;
    if (Tss2_MU_UINT32_Unmarshal(rsp.data(), rsp.size(), &off, &rc) != TSS2_RC_SUCCESS) return 0xffffffff;
    return rc;
}

Result<TPM2_HANDLE> response_handle(const Bytes& rsp) {
    size_t off = 10;
    TPM2_HANDLE h = 0;
    if (TSS2_RC rc = Tss2_MU_TPM2_HANDLE_Unmarshal(rsp.data(), rsp.size(), &off, &h); rc != TSS2_RC_SUCCESS)
        return mu_error("response handle (unmarshal)", rc);
    return h;
}

Result<uint16_t> random_bytes_returned(const Bytes& rsp) {
    size_t off = 10;
    TPM2B_DIGEST digest{};
    if (TSS2_RC rc = Tss2_MU_TPM2B_DIGEST_Unmarshal(rsp.data(), rsp.size(), &off, &digest); rc != TSS2_RC_SUCCESS)
        return mu_error("GetRandom randomBytes (unmarshal)", rc);
    return digest.size;
}

}  // namespace bench
