// Certificates and TPM responses that vtpm-setup and the verifier read:
// X.509 DER (from NV or files), the TCG fields in it, and the TPM 2.0
// response parsers. Must never crash or leak, whatever the bytes.
#include <cstddef>
#include <cstdint>

#include "x509/cert_check.hpp"
#include "x509/tcg_cert.hpp"
#include "tpm/public_key.hpp"
#include "tpm/commands.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vtpm::ByteView in(data, size);
    if (auto cert = vtpm::x509::parse_der_certificate(in)) {
        (void)vtpm::x509::read_tcg_fields(cert->get());
        (void)vtpm::x509::check_tcg_profile(cert->get(), vtpm::x509::CertKind::Ek);
        (void)vtpm::x509::summarize(cert->get());
    }
    namespace t = vtpm::tpm;
    if (auto p = t::parse_create_primary(in)) (void)vtpm::tpm::pkey_from_tpm_public(p->pub);
    if (auto p = t::parse_read_public(in)) (void)vtpm::tpm::pkey_from_tpm_public(*p);
    (void)t::parse_nv_read_public(in);
    (void)t::parse_nv_read(in);
    (void)t::parse_pcr_capability(in);
    (void)t::parse_handles_capability(in);
    (void)vtpm::tpm::unmarshal_public(in);
    return 0;
}
