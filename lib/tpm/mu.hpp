// tpm2-tss's marshalling (libtss2-mu), loaded the first time it is needed.
//
// Only the identity and snapshot features marshal TPM structures in a
// vTPM bridge; a plain `socket` bridge never does and so never maps the
// library. Each function has the signature of its Tss2_MU_ namesake.
#pragma once

#include <tss2/tss2_mu.h>

#include "vtpm/result.hpp"

namespace vtpm::tpm::mu {

/// Loads libtss2-mu.so.0 and resolves every function below, once per
/// process; later calls return the first outcome. Programs call it at start
/// when a configured feature will marshal, so a missing library stops them
/// there with its name rather than at the first use.
Result<void> load();

// The structures lib/tpm marshals. A function whose library cannot be
// loaded returns TSS2_MU_RC_BAD_REFERENCE and writes nothing.
#define VTPM_MU_TYPES(X)                                                                                         \
    X(TPM2B_ATTEST) X(TPM2B_DIGEST) X(TPM2B_MAX_NV_BUFFER) X(TPM2B_NV_PUBLIC) X(TPM2B_PUBLIC) X(TPML_DIGEST)     \
        X(TPML_DIGEST_VALUES) X(TPML_PCR_SELECTION) X(TPMS_ATTEST) X(TPMS_CAPABILITY_DATA) X(TPMT_PUBLIC)      \
            X(TPMT_SIGNATURE) X(TPMT_SIG_SCHEME)

#define VTPM_MU_DECLARE(T)                                                                   \
    TSS2_RC T##_Marshal(const T* src, uint8_t buffer[], size_t buffer_size, size_t* offset); \
    TSS2_RC T##_Unmarshal(const uint8_t buffer[], size_t buffer_size, size_t* offset, T* dest);
VTPM_MU_TYPES(VTPM_MU_DECLARE)
#undef VTPM_MU_DECLARE

}  // namespace vtpm::tpm::mu
