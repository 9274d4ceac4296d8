// Manufacturing a vTPM in-process, as swtpm_setup does through a swtpm
// child: endorsement keys at the standard handles, their certificates (and
// the platform certificate) in the standard NV indices, optionally locked,
// a storage primary key, the active PCR banks; or only the PCR banks when
// reconfiguring. Runs against an Engine that has been started (Startup(CLEAR)).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "x509/issuer.hpp"
#include "x509/tcg_cert.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::setup {

struct ManufactureOptions {
    bool create_ek = false;
    bool ek_cert = false;
    bool platform_cert = false;
    bool lock_nvram = false;
    bool create_spk = false;
    bool ecc_spk = false;        // --ecc: the SPK is ECC
    bool allow_signing = false;  // non-standard EK that can sign
    bool decryption = false;     // with allow_signing: keep decryption
    unsigned rsa_bits = 2048;
    /// PCR banks to activate ("sha1", "sha256", ...); empty: leave as they are.
    std::vector<std::string> pcr_banks;
    /// Only (re)allocate PCR banks; no keys or certificates.
    bool reconfigure = false;
    /// Subject CN of the certificates ("<name>:<uuid>" from libvirt's --vmid).
    std::string vmid;
    x509::PlatformAttributes platform{"libvtpm", "libvtpm vTPM", "0.1"};
    /// Certificate validity in days; negative: no expiry.
    int cert_days = -1;
    /// TPM 1.2 only: take ownership with these secrets (20-byte SHA-1 digests).
    bool take_ownership = false;
    Bytes owner_auth, srk_auth;
};

struct IssuedCert {
    x509::CertKind kind;
    std::string key_description;  // rsa2048, secp256r1, rsa3072, or "platform"
    uint32_t nv_index = 0;
    Bytes der;
};

struct ManufactureReport {
    std::vector<std::string> events;  // one line each, for the log file
    std::vector<IssuedCert> certs;
    std::vector<std::string> active_banks, all_banks;
};

/// Manufacture a TPM 2.0. `issuer` is needed only for certificates.
Result<ManufactureReport> manufacture_tpm2(engine::Engine& e, const ManufactureOptions& opt,
                                           x509::CertAuthority* issuer);

/// Manufacture a TPM 1.2: physical presence, enable, activate, EK, optional
/// ownership, EK and platform certificates in NV, NV lock.
Result<ManufactureReport> manufacture_tpm12(engine::Engine& e, const ManufactureOptions& opt,
                                            x509::CertAuthority* issuer);

/// TPM specification and attributes as libtpms reports them (what goes into
/// an EK certificate).
Result<std::pair<x509::TpmSpecification, x509::TpmAttributes>> tpm_info(const engine::Engine& e);

/// Read a whole NV index of a running TPM 2.0 (certificates), rc::kRetry if undefined.
Result<Bytes> tpm2_read_nv(engine::Engine& e, uint32_t index);

/// Names of PCR banks and their hash algorithm ids.
std::optional<uint16_t> bank_alg(std::string_view name);
std::string bank_name(uint16_t alg);

}  // namespace vtpm::setup
