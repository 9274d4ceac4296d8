// `vtpm-attest quote`: evidence from wherever the vTPM is reachable (in the
// guest on /dev/tpmrm0, or through any TCTI): TPM2_Quote by the vAIK over the
// chosen vPCRs with the verifier's nonce, the PCR values, the certificates
// the host left in NV, and the event logs given.
#pragma once

#include <string>
#include <vector>

#include "attest/evidence.hpp"
#include "hosttpm/esys.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::issuance {

struct QuoteRequest {
    Bytes nonce;
    std::vector<unsigned> pcrs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    TPMI_ALG_HASH bank = TPM2_ALG_SHA256;
    std::vector<Bytes> event_logs;
};

Result<attest::Evidence> make_evidence(hosttpm::Esys& vtpm, const QuoteRequest& req);

}  // namespace vtpm::issuance
