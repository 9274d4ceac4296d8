// Certificates and TPM responses that vtpm-setup and the verifier read:
// X.509 DER (from NV or files), the TCG fields in it, and the TPM 2.0
// response parsers. Must never crash or leak, whatever the bytes.
#include <cstddef>
#include <cstdint>

#include "identity/cert_check.hpp"
#include "identity/tcg_cert.hpp"
#include "identity/tpm_public.hpp"
#include "setup/tpm2_commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vtpm::ByteView in(data, size);
    if (auto cert = vtpm::identity::parse_der_certificate(in)) {
        (void)vtpm::identity::read_tcg_fields(cert->get());
        (void)vtpm::identity::check_tcg_profile(cert->get(), vtpm::identity::CertKind::Ek);
        (void)vtpm::identity::summarize(cert->get());
    }
    namespace t = vtpm::setup::tpm2;
    if (auto p = t::parse_create_primary(in)) (void)vtpm::identity::pkey_from_tpm_public(p->pub);
    if (auto p = t::parse_read_public(in)) (void)vtpm::identity::pkey_from_tpm_public(*p);
    (void)t::parse_nv_read_public(in);
    (void)t::parse_nv_read(in);
    (void)t::parse_pcr_capability(in);
    (void)t::parse_handles_capability(in);
    (void)vtpm::identity::unmarshal_tpm2b_public(in);
    return 0;
}
