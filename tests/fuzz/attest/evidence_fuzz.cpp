// Everything `vtpm-attest verify` reads from a VM or a host it does not
// trust: evidence files (and the identity bundle, CertvAIK, TPM structures
// and event logs inside), reference files and host records. The whole
// verifier runs on each input; it must never crash, leak or accept.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "attest/event_log.hpp"
#include "attest/evidence.hpp"
#include "hoststate/identity_records.hpp"
#include "tpm/objects.hpp"
#include "attest/vaik_cert.hpp"
#include "attest/verify.hpp"
#include "x509/tcg_cert.hpp"
#include "tpm/public_key.hpp"

using namespace vtpm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace vtpm::attest;
    vtpm::ByteView in(data, size);
    VerifyInputs vi;  // no trusted CA: nothing may verify
    vi.nonce = {1, 2, 3};
    const Report r = verify_evidence(vi, in);
    if (r.ok) __builtin_trap();
    (void)report_json(r);
    // The verifier stops at the first failing step; reach every parser.
    if (auto ev = decode_evidence(in)) {
        (void)encode_evidence(*ev);
        if (auto b = decode_bundle(ev->identity_bundle)) {
            (void)tpm::unmarshal_public(b->authkey_public);
            (void)tpm::parse_attest(b->certify_attest);
            (void)tpm::unmarshal_signature(b->certify_signature);
            if (auto sel = tpm::unmarshal_pcr_selection(b->host_pcr_selection))
                (void)tpm::authkey_policy(*sel, b->host_pcr_digest);
        }
        if (auto p = tpm::unmarshal_public(ev->vaik_public)) (void)tpm::pkey_from_tpm_public(*p);
        (void)tpm::parse_attest(ev->quote_attest);
        (void)tpm::unmarshal_signature(ev->quote_signature);
        if (auto c = vtpm::x509::parse_der_certificate(ev->vaik_cert)) (void)read_vaik_binding(c->get());
        for (const auto& l : ev->event_logs)
            if (auto log = parse_event_log(l)) (void)replay_event_log(*log);
    }
    if (auto b = decode_bundle(in)) (void)encode_bundle(*b);
    if (auto log = parse_event_log(in)) (void)replay_event_log(*log);
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)parse_reference(text);
    (void)hoststate::parse_identity_record(text);
    return 0;
}
