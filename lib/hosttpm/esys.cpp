#include "hosttpm/esys.hpp"

#include <tss2/tss2_rc.h>

#include <cstdio>

#include "util/bytes.hpp"

namespace vtpm::hosttpm {

std::string tss_error(const std::string& what, TSS2_RC rc) {
    char code[16];
    std::snprintf(code, sizeof(code), "0x%x", rc);
    return what + ": " + Tss2_RC_Decode(rc) + " (" + code + ")";
}

Result<std::unique_ptr<Esys>> Esys::open(const std::string& tcti_conf) {
    TSS2_TCTI_CONTEXT* tcti = nullptr;
    TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti_conf.c_str(), &tcti);
    if (rc != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, tss_error("cannot reach the host TPM through TCTI '" + tcti_conf + "'", rc));
    ESYS_CONTEXT* ctx = nullptr;
    rc = Esys_Initialize(&ctx, tcti, nullptr);
    if (rc != TSS2_RC_SUCCESS) {
        Tss2_TctiLdr_Finalize(&tcti);
        return make_error(rc::kFail, tss_error("ESYS initialisation on '" + tcti_conf + "' failed", rc));
    }
    return std::make_unique<Esys>(tcti, ctx);
}

Esys::~Esys() {
    Esys_Finalize(&ctx_);
    Tss2_TctiLdr_Finalize(&tcti_);
}

Result<TrHandle> tr_from_tpm(Esys& tpm, uint32_t tpm_handle) {
    ESYS_TR h = ESYS_TR_NONE;
    TSS2_RC rc = Esys_TR_FromTPMPublic(tpm.ctx(), tpm_handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h);
    if (rc != TSS2_RC_SUCCESS) return make_error(rc::kRetry, tss_error("nothing at " + hex32(tpm_handle), rc));
    return TrHandle(tpm.ctx(), h);
}

}  // namespace vtpm::hosttpm
