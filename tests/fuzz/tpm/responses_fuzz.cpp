// Fuzz every TPM 2.0 response parser of the TPM layer (what a vTPM or the
// bridge answers to the host's commands) and the structure unmarshallers the
// verifier uses: arbitrary bytes must give a clean error or a structure.
#include <cstdlib>

#include "tpm/commands.hpp"
#include "tpm/objects.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace tpm = vtpm::tpm;
    const vtpm::ByteView in(data, size);
    (void)tpm::response_code(in);
    (void)tpm::command_code(in);
    if (auto n = tpm::command_frame_size(in, true, 4105); n && (*n > size || *n < 10)) std::abort();
    (void)tpm::command_frame_size(in, false, 4105);
    if (auto r = tpm::parse_pcr_read(in)) {
        if (r->values.count > 8) std::abort();
    }
    (void)tpm::parse_quote(in);
    (void)tpm::parse_create_primary(in);
    (void)tpm::parse_read_public(in);
    (void)tpm::parse_nv_read_public(in);
    (void)tpm::parse_nv_read(in);
    (void)tpm::parse_get_random(in);
    (void)tpm::parse_pcr_capability(in);
    (void)tpm::parse_handles_capability(in);
    (void)tpm::unmarshal_public(in);
    size_t used = 0;
    if (tpm::unmarshal_public(in, &used) && used > size) std::abort();
    (void)tpm::unmarshal_pcr_selection(in);
    (void)tpm::unmarshal_signature(in);
    (void)tpm::parse_attest(in);
    return 0;
}
