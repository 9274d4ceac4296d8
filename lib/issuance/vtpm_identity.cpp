#include "issuance/vtpm_identity.hpp"

#include <openssl/rand.h>

#include <algorithm>

#include "hosttpm/host_keys.hpp"
#include "tpm/commands.hpp"

namespace vtpm::issuance {


namespace {

constexpr uint32_t kNvAttributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_PPREAD |
                                   TPMA_NV_NO_DA;

Result<Bytes> run(VtpmChannel& ch, const Bytes& cmd, const char* what) {
    auto rsp = ch.transact(cmd);
    if (!rsp) return rsp.error();
    const uint32_t rc = tpm::response_code(*rsp);
    if (rc != 0) {
        std::string hint;
        if ((rc & 0xbf) == (TPM2_RC_BAD_AUTH & 0xbf) || (rc & 0xbf) == (TPM2_RC_AUTH_FAIL & 0xbf))
            hint = " (the guest has set an owner/endorsement password; install the identity offline)";
        return make_error(rc::kFail, std::string(what) + " failed in the vTPM: TPM rc " + hex32(rc) + hint);
    }
    return rsp;
}

bool is_handle_error(uint32_t rc) {
    // TPM_RC_HANDLE (0x8b) with any handle/parameter number bits.
    return (rc & 0x3f) == (TPM2_RC_HANDLE & 0x3f) && (rc & TPM2_RC_FMT1);
}

}  // namespace

TPMT_PUBLIC vaik_template() {
    // The same kind of key as the host AK: restricted ECC P-256 ECDSA signing,
    // non-migratable, an endorsement-hierarchy primary.
    return hosttpm::host_ak_template().publicArea;
}

Result<std::optional<TPMT_PUBLIC>> read_vaik(VtpmChannel& ch) {
    auto rsp = ch.transact(tpm::read_public(tpm::kVaikHandle));
    if (!rsp) return rsp.error();
    const uint32_t rc = tpm::response_code(*rsp);
    if (is_handle_error(rc)) return std::optional<TPMT_PUBLIC>{};
    if (rc != 0) return make_error(rc::kFail, "ReadPublic of the vAIK: TPM rc " + hex32(rc));
    auto pub = tpm::parse_read_public(*rsp);
    if (!pub) return pub.error();
    const TPMT_PUBLIC want = vaik_template();
    if (pub->type != want.type || pub->objectAttributes != want.objectAttributes)
        return make_error(rc::kFail, "the object at " + hex32(tpm::kVaikHandle) + " is not a vAIK (attributes differ)");
    return std::optional<TPMT_PUBLIC>(*pub);
}

Result<TPMT_PUBLIC> create_vaik(VtpmChannel& ch) {
    auto rsp = run(ch, tpm::create_primary(TPM2_RH_ENDORSEMENT, vaik_template()), "creating the vAIK");
    if (!rsp) return rsp.error();
    auto created = tpm::parse_create_primary(*rsp);
    if (!created) return created.error();
    auto persisted = run(ch, tpm::evict_control(created->handle, tpm::kVaikHandle), "persisting the vAIK");
    (void)ch.transact(tpm::flush_context(created->handle));
    if (!persisted) return persisted.error();
    return created->pub;
}

Result<Bytes> read_nv(VtpmChannel& ch, uint32_t index) {
    auto rsp = ch.transact(tpm::nv_read_public(index));
    if (!rsp) return rsp.error();
    const uint32_t rc = tpm::response_code(*rsp);
    if (is_handle_error(rc)) return make_error(rc::kRetry, "NV index " + hex32(index) + " is not defined");
    if (rc != 0) return make_error(rc::kFail, "NV_ReadPublic(" + hex32(index) + "): TPM rc " + hex32(rc));
    auto pub = tpm::parse_nv_read_public(*rsp);
    if (!pub) return pub.error();
    Bytes out;
    while (out.size() < pub->dataSize) {
        const auto n = static_cast<uint16_t>(std::min<size_t>(tpm::kNvChunk, pub->dataSize - out.size()));
        auto r = run(ch, tpm::nv_read(index, n, static_cast<uint16_t>(out.size())), "NV_Read");
        if (!r) return r.error();
        auto data = tpm::parse_nv_read(*r);
        if (!data) return data.error();
        out.insert(out.end(), data->begin(), data->end());
    }
    return out;
}

Result<uint64_t> read_generation(VtpmChannel& ch) {
    auto data = read_nv(ch, tpm::kNvGeneration);
    if (!data) return data.code() == rc::kRetry ? Result<uint64_t>(uint64_t{0}) : Result<uint64_t>(data.error());
    if (data->size() != 8) return make_error(rc::kFail, "the vTPM's identity generation index is not 8 bytes");
    return load_be64(data->data());
}

Result<void> write_nv(VtpmChannel& ch, uint32_t index, ByteView data) {
    if (data.empty() || data.size() > 2048) return make_error(rc::kBadParameter, "NV data of a bad size");
    auto rsp = ch.transact(tpm::nv_read_public(index));
    if (!rsp) return rsp.error();
    if (tpm::response_code(*rsp) == 0) {
        auto r = run(ch, tpm::nv_undefine_space(index, TPM2_RH_OWNER), "NV_UndefineSpace");
        if (!r) return r.error();
    }
    auto d = run(ch, tpm::nv_define_space(index, kNvAttributes, static_cast<uint16_t>(data.size()), TPM2_RH_OWNER),
                 "NV_DefineSpace");
    if (!d) return d.error();
    for (size_t off = 0; off < data.size(); off += tpm::kNvChunk) {
        const size_t n = std::min<size_t>(tpm::kNvChunk, data.size() - off);
        auto w = run(ch, tpm::nv_write(index, data.subspan(off, n), static_cast<uint16_t>(off), TPM2_RH_OWNER),
                     "NV_Write");
        if (!w) return w.error();
    }
    return {};
}

Result<Bytes> activate_vaik_credential(VtpmChannel& ch, ByteView credential_blob, ByteView encrypted_secret) {
    uint8_t nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1) return make_error(rc::kFail, "no random bytes");
    auto started = run(ch, tpm::start_policy_session(ByteView(nonce, sizeof nonce)), "StartAuthSession");
    if (!started) return started.error();
    auto session = tpm::parse_start_auth_session(*started);
    if (!session) return session.error();
    if (auto p = run(ch, tpm::policy_secret_endorsement(*session), "PolicySecret(endorsement)"); !p) {
        (void)ch.transact(tpm::flush_context(*session));
        return p.error();
    }
    const Bytes cmd =
        tpm::activate_credential(tpm::kVaikHandle, tpm::kEkRsa2048Handle, *session, credential_blob, encrypted_secret);
    auto rsp = ch.transact(cmd);
    // TPM_RC_RETRY: not run (libtpms may first have to finish the EK's RSA key); the same command again.
    for (int i = 0; i < 8 && rsp && tpm::response_code(*rsp) == TPM2_RC_RETRY; ++i) rsp = ch.transact(cmd);
    if (!rsp) return rsp.error();
    if (const uint32_t rc = tpm::response_code(*rsp); rc != 0) {
        (void)ch.transact(tpm::flush_context(*session));
        return make_error(rc::kFail, "ActivateCredential in the vTPM failed: TPM rc " + hex32(rc) +
                                         " (no RSA EK at " + hex32(tpm::kEkRsa2048Handle) +
                                         ", or not the EK of its certificate?)");
    }
    return tpm::parse_activate_credential(*rsp);
}

}  // namespace vtpm::issuance
