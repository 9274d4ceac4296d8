#include "hosttpm/ledger_counter.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>

namespace vtpm::hosttpm {

namespace {

constexpr TPMA_NV kCounterAttributes = (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_AUTHWRITE |
                                       TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;

Result<TrHandle> open_index(Esys& tpm, const TPM2B_AUTH& auth) {
    auto h = tr_from_tpm(tpm, kLedgerCounterIndex);
    if (!h) return h.error();
    TPM2B_NV_PUBLIC* pub_raw = nullptr;
    TSS2_RC rc = Esys_NV_ReadPublic(tpm.ctx(), h->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, nullptr);
    EsysPtr<TPM2B_NV_PUBLIC> pub(pub_raw);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("reading the ledger counter's NV public area", rc));
    // Someone else's index at our handle is not our counter, whatever it says.
    if ((pub->nvPublic.attributes & ~TPMA_NV_WRITTEN) != kCounterAttributes || pub->nvPublic.dataSize != 8)
        return make_error(rc::kFail, "NV index 0x01000010 is not vtpm-hostd's ledger counter (attributes)");
    rc = Esys_TR_SetAuth(tpm.ctx(), h->get(), &auth);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("ledger counter auth", rc));
    return h;
}

Result<uint64_t> read_value(Esys& tpm, ESYS_TR h) {
    TPM2B_MAX_NV_BUFFER* data_raw = nullptr;
    TSS2_RC rc = Esys_NV_Read(tpm.ctx(), h, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &data_raw);
    EsysPtr<TPM2B_MAX_NV_BUFFER> data(data_raw);
    if (rc != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, tss_error("reading the ledger counter (another host's index, or its auth "
                                               "changed?)", rc));
    if (data->size != 8) return make_error(rc::kFail, "the ledger counter is not 8 bytes");
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | data->buffer[i];
    return v;
}

}  // namespace

LedgerCounter::LedgerCounter(ByteView auth) {
    const size_t n = std::min(auth.size(), sizeof auth_.buffer);
    std::memcpy(auth_.buffer, auth.data(), n);
    auth_.size = static_cast<UINT16>(n);
}

LedgerCounter::~LedgerCounter() { OPENSSL_cleanse(&auth_, sizeof auth_); }

Result<std::optional<uint64_t>> LedgerCounter::read(Esys& tpm) const {
    auto h = open_index(tpm, auth_);
    if (!h) {
        if (h.code() == rc::kRetry) return std::optional<uint64_t>{};
        return h.error();
    }
    auto v = read_value(tpm, h->get());
    if (!v) return v.error();
    return std::optional<uint64_t>(*v);
}

Result<uint64_t> LedgerCounter::define(Esys& tpm) const {
    TPM2B_NV_PUBLIC pub{};
    pub.nvPublic.nvIndex = kLedgerCounterIndex;
    pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
    pub.nvPublic.attributes = kCounterAttributes;
    pub.nvPublic.dataSize = 8;
    ESYS_TR raw = ESYS_TR_NONE;
    TSS2_RC rc = Esys_NV_DefineSpace(tpm.ctx(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                     &auth_, &pub, &raw);
    if (rc != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, tss_error("defining the ledger counter (NV 0x01000010; owner auth set?)", rc));
    TrHandle h(tpm.ctx(), raw);
    rc = Esys_TR_SetAuth(tpm.ctx(), h.get(), &auth_);
    if (rc == TSS2_RC_SUCCESS)
        rc = Esys_NV_Increment(tpm.ctx(), h.get(), h.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("starting the ledger counter", rc));
    return read_value(tpm, h.get());
}

Result<uint64_t> LedgerCounter::increment(Esys& tpm) const {
    auto h = open_index(tpm, auth_);
    if (!h) return h.code() == rc::kRetry ? make_error(rc::kFail, "the host TPM's ledger counter is gone") : h.error();
    TSS2_RC rc = Esys_NV_Increment(tpm.ctx(), h->get(), h->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kFail, tss_error("incrementing the ledger counter", rc));
    return read_value(tpm, h->get());
}

}  // namespace vtpm::hosttpm
