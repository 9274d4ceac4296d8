#include "tpm_cmds.hpp"

#include <cstring>

#include "tpm/commands.hpp"
#include "tpm/objects.hpp"

// The benchmark's commands come from the project's one TPM layer (lib/tpm);
// only the choice of keys, sizes and fill bytes is the benchmark's.
namespace bench {
namespace {

namespace tpm = vtpm::tpm;
using vtpm::Result;

// 4 bytes of `variant` as the unique field (big-endian): every value derives
// a different key, the same value the same key.
void put_variant(uint8_t* dst, uint16_t* size, uint32_t variant) {
    for (int i = 0; i < 4; ++i) dst[i] = static_cast<uint8_t>(variant >> (24 - 8 * i));
    *size = 4;
}

TPMA_OBJECT key_attributes(TPMA_OBJECT usage) {
    return TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
           TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | usage;
}

}  // namespace

Result<Bytes> cmd_get_random(uint16_t bytes) { return tpm::get_random(bytes); }

Result<Bytes> cmd_pcr_extend(TPM2_HANDLE pcr, uint8_t fill) {
    TPML_DIGEST_VALUES digests{};
    digests.count = 1;
    digests.digests[0].hashAlg = TPM2_ALG_SHA256;
    std::memset(digests.digests[0].digest.sha256, fill, TPM2_SHA256_DIGEST_SIZE);
    return tpm::pcr_extend(pcr, digests);
}

Result<Bytes> cmd_pcr_read(uint32_t pcr) { return tpm::pcr_read(tpm::pcr_selection(TPM2_ALG_SHA256, {pcr})); }

Result<Bytes> cmd_create_primary_ecc(uint32_t variant) {
    TPMT_PUBLIC pub{};
    pub.type = TPM2_ALG_ECC;
    pub.nameAlg = TPM2_ALG_SHA256;
    pub.objectAttributes = key_attributes(TPMA_OBJECT_SIGN_ENCRYPT);
    TPMS_ECC_PARMS& ecc = pub.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_NULL;
    ecc.scheme.scheme = TPM2_ALG_ECDSA;
    ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    put_variant(pub.unique.ecc.x.buffer, &pub.unique.ecc.x.size, variant);
    return tpm::create_primary(TPM2_RH_OWNER, pub);
}

Result<Bytes> cmd_create_primary_rsa(uint32_t variant) {
    TPMT_PUBLIC pub{};
    pub.type = TPM2_ALG_RSA;
    pub.nameAlg = TPM2_ALG_SHA256;
    pub.objectAttributes = key_attributes(TPMA_OBJECT_DECRYPT);
    TPMS_RSA_PARMS& rsa = pub.parameters.rsaDetail;
    rsa.symmetric.algorithm = TPM2_ALG_AES;
    rsa.symmetric.keyBits.aes = 128;
    rsa.symmetric.mode.aes = TPM2_ALG_CFB;
    rsa.scheme.scheme = TPM2_ALG_NULL;
    rsa.keyBits = 2048;
    rsa.exponent = 0;
    put_variant(pub.unique.rsa.buffer, &pub.unique.rsa.size, variant);
    return tpm::create_primary(TPM2_RH_OWNER, pub);
}

Result<Bytes> cmd_flush_context(TPM2_HANDLE handle) { return tpm::flush_context(handle); }

Result<Bytes> cmd_quote(TPM2_HANDLE key, uint32_t pcr) {
    const Bytes nonce(16, 0x5a);
    return tpm::quote(key, nonce, tpm::pcr_selection(TPM2_ALG_SHA256, {pcr}));
}

Result<Bytes> cmd_nv_define(TPM2_HANDLE index, uint16_t size) {
    // An ordinary index, owner read/write, empty auth.
    return tpm::nv_define_space(index, TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD, size, TPM2_RH_OWNER);
}

Result<Bytes> cmd_nv_write(TPM2_HANDLE index, uint16_t size, uint8_t fill) {
    return tpm::nv_write(index, Bytes(size, fill), 0, TPM2_RH_OWNER);
}

Result<TPM2_HANDLE> response_handle(const Bytes& rsp) {
    auto created = tpm::parse_create_primary(rsp);
    if (!created) return created.error();
    return created->handle;
}

Result<uint16_t> random_bytes_returned(const Bytes& rsp) {
    auto r = tpm::parse_get_random(rsp);
    if (!r) return r.error();
    return static_cast<uint16_t>(r->size());
}

}  // namespace bench
