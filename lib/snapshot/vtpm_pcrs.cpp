#include "snapshot/vtpm_pcrs.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <openssl/evp.h>

#include <cstring>

#include "tpm/objects.hpp"
#include "tpm/handles.hpp"
#include "tpm/commands.hpp"

namespace vtpm::snapshot {


namespace {

constexpr unsigned kPcrCount = 24;

Result<TPML_PCR_SELECTION> active_banks(engine::Engine& e) {
    const Bytes rsp = e.host_command(tpm::get_capability(TPM2_CAP_PCRS, 0, 1));
    auto sel = tpm::parse_pcr_capability(rsp);
    if (!sel) return make_error(rc::kFail, "reading the vTPM's PCR banks: " + sel.error().message);
    TPML_PCR_SELECTION out{};
    for (uint32_t i = 0; i < sel->count; ++i) {
        const auto& b = sel->pcrSelections[i];
        bool any = false;
        for (unsigned j = 0; j < b.sizeofSelect; ++j) any |= b.pcrSelect[j] != 0;
        if (any && tpm::hash_size(b.hash) != 0) out.pcrSelections[out.count++] = b;
    }
    if (out.count == 0) return make_error(rc::kFail, "the vTPM has no active PCR bank");
    return out;
}

// Every PCR 0-23 of the given banks.
TPML_PCR_SELECTION all_pcrs(const std::vector<uint16_t>& algs) {
    TPML_PCR_SELECTION sel{};
    for (uint16_t alg : algs) {
        auto& s = sel.pcrSelections[sel.count++];
        s.hash = alg;
        s.sizeofSelect = 3;
        s.pcrSelect[0] = s.pcrSelect[1] = s.pcrSelect[2] = 0xff;
    }
    return sel;
}

}  // namespace

Result<std::vector<PcrBank>> read_all_pcrs(engine::Engine& e) {
    auto active = active_banks(e);
    if (!active) return active.error();
    std::vector<PcrBank> banks;
    std::vector<uint16_t> algs;
    for (uint32_t i = 0; i < active->count; ++i) {
        PcrBank b;
        b.hash_alg = active->pcrSelections[i].hash;
        b.values.resize(kPcrCount);
        banks.push_back(std::move(b));
        algs.push_back(active->pcrSelections[i].hash);
    }
    // PCR_Read answers at most 8 digests per call and says which.
    TPML_PCR_SELECTION want = all_pcrs(algs);
    for (int round = 0; round < 32; ++round) {
        bool left = false;
        for (uint32_t i = 0; i < want.count; ++i)
            for (unsigned j = 0; j < 3; ++j) left |= want.pcrSelections[i].pcrSelect[j] != 0;
        if (!left) return banks;
        auto rd = tpm::parse_pcr_read(e.host_command(tpm::pcr_read(want)));
        if (!rd) return make_error(rc::kFail, "reading the vPCRs: " + rd.error().message);
        uint32_t next = 0;
        for (uint32_t i = 0; i < rd->selected.count; ++i) {
            const auto& s = rd->selected.pcrSelections[i];
            size_t bank = 0;
            while (bank < banks.size() && banks[bank].hash_alg != s.hash) ++bank;
            if (bank == banks.size()) return make_error(rc::kFail, "PCR_Read answered an unrequested bank");
            for (unsigned pcr = 0; pcr < kPcrCount && pcr / 8 < s.sizeofSelect; ++pcr) {
                if (!(s.pcrSelect[pcr / 8] & (1u << (pcr % 8)))) continue;
                if (next >= rd->values.count)
                    return make_error(rc::kFail, "PCR_Read answered fewer digests than it says");
                const auto& d = rd->values.digests[next++];
                banks[bank].values[pcr].assign(d.buffer, d.buffer + d.size);
                want.pcrSelections[bank].pcrSelect[pcr / 8] &= static_cast<uint8_t>(~(1u << (pcr % 8)));
            }
        }
        if (next == 0) return make_error(rc::kFail, "PCR_Read made no progress");
    }
    return make_error(rc::kFail, "PCR_Read did not return every vPCR");
}

Result<std::optional<VaikQuote>> quote_with_vaik(engine::Engine& e, ByteView qualifying,
                                                 const std::vector<PcrBank>& banks) {
    const Bytes rp = e.host_command(tpm::read_public(tpm::kVaikHandle));
    if (tpm::response_code(rp) != 0) return std::optional<VaikQuote>{};  // no vAIK: nothing to quote with
    auto pub = tpm::parse_read_public(rp);
    if (!pub) return pub.error();
    VaikQuote q;
    auto mp = tpm::marshal_public(*pub);
    if (!mp) return mp.error();
    q.vaik_public = std::move(*mp);
    std::vector<uint16_t> algs;
    for (const auto& b : banks) algs.push_back(b.hash_alg);
    // libtpms answers the first ECDSA operation of a key with TPM_RC_RETRY.
    for (int attempt = 0; attempt < 4; ++attempt) {
        const Bytes rsp = e.host_command(tpm::quote(tpm::kVaikHandle, qualifying, all_pcrs(algs)));
        const uint32_t code = tpm::response_code(rsp);
        if (code == TPM2_RC_RETRY) continue;
        if (code != 0) return make_error(rc::kFail, "TPM2_Quote by the vAIK failed: TPM rc " + hex32(code));
        auto parsed = tpm::parse_quote(rsp);
        if (!parsed) return parsed.error();
        auto sig = tpm::marshal_signature(parsed->signature);
        if (!sig) return sig.error();
        q.attest = std::move(parsed->attest);
        q.signature = std::move(*sig);
        return std::optional<VaikQuote>(std::move(q));
    }
    return make_error(rc::kFail, "TPM2_Quote by the vAIK kept answering TPM_RC_RETRY");
}

Result<void> taint_pcrs(engine::Engine& e) {
    auto active = active_banks(e);
    if (!active) return active.error();
    // A fresh secret value per taint, never logged or stored: the guest
    // cannot add a matching event to its log, so no replay reaches these
    // vPCRs and no quote over them verifies.
    TPML_DIGEST_VALUES dv{};
    for (uint32_t i = 0; i < active->count; ++i) {
        const uint16_t alg = active->pcrSelections[i].hash;
        auto& d = dv.digests[dv.count++];
        d.hashAlg = alg;
        const size_t n = tpm::hash_size(alg);
        if (n == 0 || RAND_bytes(reinterpret_cast<uint8_t*>(&d.digest), static_cast<int>(n)) != 1) {
            OPENSSL_cleanse(&dv, sizeof dv);
            return make_error(rc::kFail, "no random value to taint the vPCRs with (bank " + hex32(alg) + ")");
        }
    }
    struct Wipe {
        TPML_DIGEST_VALUES& v;
        ~Wipe() { OPENSSL_cleanse(&v, sizeof v); }
    } wipe{dv};
    for (uint32_t pcr = 0; pcr < kPcrCount; ++pcr) {
        if (pcr > 16 && pcr != 23) continue;
        const uint32_t code = tpm::response_code(e.host_command(tpm::pcr_extend(pcr, dv)));
        if (code != 0)
            return make_error(rc::kFail, "extending vPCR " + std::to_string(pcr) + " failed: TPM rc " + hex32(code));
    }
    return {};
}

}  // namespace vtpm::snapshot
