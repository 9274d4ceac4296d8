#include "setup/manufacture.hpp"

#include <tss2/tss2_mu.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "tpm/public_key.hpp"
#include "tpm/commands.hpp"
#include "util/log.hpp"

namespace vtpm::setup {

namespace {

constexpr struct {
    const char* name;
    uint16_t alg;
} kBanks[] = {{"sha1", TPM2_ALG_SHA1},         {"sha256", TPM2_ALG_SHA256},     {"sha384", TPM2_ALG_SHA384},
              {"sha512", TPM2_ALG_SHA512},     {"sm3-256", TPM2_ALG_SM3_256},   {"sha3-256", TPM2_ALG_SHA3_256},
              {"sha3-384", TPM2_ALG_SHA3_384}, {"sha3-512", TPM2_ALG_SHA3_512}};

// Run one command; a TPM error becomes an Error naming the command.
Result<Bytes> call(engine::Engine& e, ByteView cmd, const std::string& what) {
    Bytes rsp = e.command(cmd);
    const uint32_t code = tpm::response_code(rsp);
    if (code != 0) return make_error(rc::kFail, what + " failed: TPM error " + hex32(code));
    return rsp;
}

// Value of "key": in a flat JSON text from libtpms (string or integer).
std::optional<std::string> json_field(std::string_view json, std::string_view section, std::string_view key) {
    size_t at = json.find("\"" + std::string(section) + "\"");
    if (at == std::string_view::npos) return std::nullopt;
    at = json.find("\"" + std::string(key) + "\"", at);
    if (at == std::string_view::npos) return std::nullopt;
    at = json.find(':', at);
    if (at == std::string_view::npos) return std::nullopt;
    ++at;
    while (at < json.size() && json[at] == ' ') ++at;
    if (at < json.size() && json[at] == '"') {
        const size_t end = json.find('"', at + 1);
        if (end == std::string_view::npos) return std::nullopt;
        return std::string(json.substr(at + 1, end - at - 1));
    }
    size_t end = at;
    while (end < json.size() && (std::isdigit(static_cast<unsigned char>(json[end])) || json[end] == '-')) ++end;
    if (end == at) return std::nullopt;
    return std::string(json.substr(at, end - at));
}

Result<void> write_nv(engine::Engine& e, uint32_t index, ByteView data, bool lock, const std::string& purpose,
                      ManufactureReport& rep) {
    if (data.size() > 0xffff) return make_error(rc::kFail, purpose + " is too large for an NV index");
    const auto size = static_cast<uint16_t>(data.size());
    if (auto r = call(e, tpm::nv_define_space(index, tpm::kNvCertAttributes, size),
                      "NV_DefineSpace(" + hex32(index) + ") for the " + purpose);
        !r)
        return r.error();
    for (size_t off = 0; off < data.size(); off += tpm::kNvChunk) {
        const size_t n = std::min<size_t>(tpm::kNvChunk, data.size() - off);
        if (auto r = call(e, tpm::nv_write(index, data.subspan(off, n), static_cast<uint16_t>(off)),
                          "NV_Write(" + hex32(index) + ") of the " + purpose);
            !r)
            return r.error();
    }
    if (lock) {
        if (auto r = call(e, tpm::nv_write_lock(index), "NV_WriteLock(" + hex32(index) + ")"); !r) return r.error();
    }
    rep.events.push_back("Successfully created NVRAM area " + hex32(index) + " for " + purpose + ".");
    return {};
}

struct Ek {
    tpm::EkLayout layout;
    vtpm::PkeyPtr key;
};

Result<Ek> create_ek(engine::Engine& e, tpm::EkKind kind, const ManufactureOptions& opt, ManufactureReport& rep) {
    const auto layout = tpm::ek_layout(kind);
    const TPMT_PUBLIC tmpl = tpm::ek_template(kind, opt.allow_signing, opt.decryption);
    auto rsp = call(e, tpm::create_primary(TPM2_RH_ENDORSEMENT, tmpl),
                    std::string("CreatePrimary(EK ") + layout.description + ")");
    if (!rsp) return rsp.error();
    auto created = tpm::parse_create_primary(*rsp);
    if (!created) return created.error();
    if (auto r = call(e, tpm::evict_control(created->handle, layout.handle), "EvictControl(EK)"); !r) return r.error();
    (void)e.command(tpm::flush_context(created->handle));
    rep.events.push_back(std::string("Successfully created ") + layout.description + " EK with handle " +
                         hex32(layout.handle) + ".");
    auto key = tpm::pkey_from_tpm_public(created->pub);
    if (!key) return key.error();
    // A non-standard EK is described by its template, as swtpm_setup does.
    if (opt.allow_signing) {
        if (auto r = write_nv(e, layout.template_index, tpm::marshal_tpmt_public(tmpl), opt.lock_nvram,
                              std::string(layout.description) + " EK template", rep);
            !r)
            return r.error();
    }
    return Ek{layout, std::move(*key)};
}

Result<void> issue_and_store(engine::Engine& e, x509::CertKind kind, EVP_PKEY* key, uint32_t index,
                             const std::string& description, const ManufactureOptions& opt,
                             x509::CertAuthority& issuer, ManufactureReport& rep) {
    auto info = tpm_info(e);
    if (!info) return info.error();
    x509::CertRequest req;
    req.kind = kind;
    req.subject_key = key;
    req.tpm2 = e.tpm2();
    req.allow_signing = opt.allow_signing;
    req.decryption = !opt.allow_signing || opt.decryption;
    req.subject_cn = opt.vmid.empty() ? "unknown" : opt.vmid;
    req.spec = info->first;
    req.tpm = info->second;
    req.platform = opt.platform;
    req.days = opt.cert_days;
    auto der = issuer.issue(req);
    if (!der) return make_error(der.code(), "creating the " + description + " certificate: " + der.error().message);
    const std::string purpose = kind == x509::CertKind::Ek ? description + " EK certificate" : "platform certificate";
    if (e.tpm2()) {
        if (auto r = write_nv(e, index, *der, opt.lock_nvram, purpose, rep); !r) return r;
    }
    rep.certs.push_back({kind, kind == x509::CertKind::Ek ? description : "platform", index, std::move(*der)});
    return {};
}

Result<void> activate_banks(engine::Engine& e, const std::vector<std::string>& wanted, ManufactureReport& rep) {
    auto rsp = call(e, tpm::get_capability(TPM2_CAP_PCRS, 0, 64), "GetCapability(PCRS)");
    if (!rsp) return rsp.error();
    auto all = tpm::parse_pcr_capability(*rsp);
    if (!all) return all.error();
    TPML_PCR_SELECTION sel{};
    for (uint32_t i = 0; i < all->count; ++i) rep.all_banks.push_back(bank_name(all->pcrSelections[i].hash));
    for (uint32_t i = 0; i < all->count; ++i) {
        const uint16_t alg = all->pcrSelections[i].hash;
        const bool on = std::find(wanted.begin(), wanted.end(), bank_name(alg)) != wanted.end();
        auto& s = sel.pcrSelections[sel.count++];
        s.hash = alg;
        s.sizeofSelect = 3;
        s.pcrSelect[0] = s.pcrSelect[1] = s.pcrSelect[2] = on ? 0xff : 0x00;
        if (on) rep.active_banks.push_back(bank_name(alg));
    }
    if (rep.active_banks.empty())
        return make_error(rc::kBadParameter,
                          "No PCR banks could be allocated. None of the selected algorithms are supported.");
    if (auto r = call(e, tpm::pcr_allocate(sel), "PCR_Allocate"); !r) return r.error();
    auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
        return s;
    };
    rep.events.push_back("Successfully activated PCR banks " + join(rep.active_banks) + " among " +
                         join(rep.all_banks) + ".");
    return {};
}

}  // namespace

std::optional<uint16_t> bank_alg(std::string_view name) {
    for (const auto& b : kBanks)
        if (name == b.name) return b.alg;
    return std::nullopt;
}

std::string bank_name(uint16_t alg) {
    for (const auto& b : kBanks)
        if (alg == b.alg) return b.name;
    char buf[8];
    snprintf(buf, sizeof(buf), "%02x", alg);
    return buf;
}

Result<std::pair<x509::TpmSpecification, x509::TpmAttributes>> tpm_info(const engine::Engine& e) {
    // TPMLIB_INFO_TPMSPECIFICATION | TPMLIB_INFO_TPMATTRIBUTES, as CMD_GET_INFO flags 3.
    auto json = e.info(3);
    if (!json) return json.error();
    x509::TpmSpecification spec;
    x509::TpmAttributes attrs;
    auto family = json_field(*json, "TPMSpecification", "family");
    auto level = json_field(*json, "TPMSpecification", "level");
    auto revision = json_field(*json, "TPMSpecification", "revision");
    auto manufacturer = json_field(*json, "TPMAttributes", "manufacturer");
    auto version = json_field(*json, "TPMAttributes", "version");
    auto model = json_field(*json, "TPMAttributes", "model");
    if (!family || !level || !revision || !manufacturer || !version || !model)
        return make_error(rc::kFail, "libtpms did not report the TPM specification and attributes: " + *json);
    spec.family = *family;
    spec.level = std::strtoull(level->c_str(), nullptr, 10);
    spec.revision = std::strtoull(revision->c_str(), nullptr, 10);
    attrs = {*manufacturer, *model, *version};
    return std::pair{spec, attrs};
}

Result<Bytes> tpm2_read_nv(engine::Engine& e, uint32_t index) {
    Bytes rsp = e.command(tpm::nv_read_public(index));
    if (tpm::response_code(rsp) != 0) return make_error(rc::kRetry, "NV index " + hex32(index) + " is not defined");
    auto pub = tpm::parse_nv_read_public(rsp);
    if (!pub) return pub.error();
    Bytes out;
    for (uint32_t off = 0; off < pub->dataSize; off += tpm::kNvChunk) {
        const auto n = static_cast<uint16_t>(std::min<uint32_t>(tpm::kNvChunk, pub->dataSize - off));
        auto r = call(e, tpm::nv_read(index, n, static_cast<uint16_t>(off)), "NV_Read(" + hex32(index) + ")");
        if (!r) return r.error();
        auto chunk = tpm::parse_nv_read(*r);
        if (!chunk) return chunk.error();
        out.insert(out.end(), chunk->begin(), chunk->end());
    }
    return out;
}

Result<ManufactureReport> manufacture_tpm2(engine::Engine& e, const ManufactureOptions& opt,
                                           x509::CertAuthority* issuer) {
    ManufactureReport rep;
    if ((opt.ek_cert || opt.platform_cert) && !issuer)
        return make_error(rc::kBadParameter, "certificates requested but no certificate issuer configured");
    if (opt.rsa_bits != 2048 && opt.rsa_bits != 3072)
        return make_error(rc::kBadParameter, "unsupported RSA key size " + std::to_string(opt.rsa_bits));
    if (!opt.reconfigure) {
        if (opt.create_spk) {
            auto rsp = call(e, tpm::create_primary(TPM2_RH_OWNER, tpm::spk_template(opt.ecc_spk, opt.rsa_bits)),
                            "CreatePrimary(SPK)");
            if (!rsp) return rsp.error();
            auto created = tpm::parse_create_primary(*rsp);
            if (!created) return created.error();
            if (auto r = call(e, tpm::evict_control(created->handle, tpm::kSpkHandle), "EvictControl(SPK)"); !r)
                return r.error();
            (void)e.command(tpm::flush_context(created->handle));
            rep.events.push_back("Successfully created storage primary key with handle " + hex32(tpm::kSpkHandle) +
                                 ".");
        }
        if (opt.create_ek) {
            // First the RSA EK (with the platform certificate), then the ECC EK.
            const auto rsa_kind = opt.rsa_bits == 3072 ? tpm::EkKind::Rsa3072 : tpm::EkKind::Rsa2048;
            for (auto kind : {rsa_kind, tpm::EkKind::EccP256}) {
                auto ek = create_ek(e, kind, opt, rep);
                if (!ek) return ek.error();
                if (opt.ek_cert) {
                    if (auto r = issue_and_store(e, x509::CertKind::Ek, ek->key.get(), ek->layout.cert_index,
                                                 ek->layout.description, opt, *issuer, rep);
                        !r)
                        return r.error();
                }
                if (opt.platform_cert && kind == rsa_kind) {
                    if (auto r = issue_and_store(e, x509::CertKind::Platform, ek->key.get(), tpm::kNvPlatformCert,
                                                 "platform", opt, *issuer, rep);
                        !r)
                        return r.error();
                }
            }
        }
    }
    if (!opt.pcr_banks.empty()) {
        if (auto r = activate_banks(e, opt.pcr_banks, rep); !r) return r.error();
    }
    if (auto r = call(e, tpm::shutdown(TPM2_SU_CLEAR), "Shutdown(CLEAR)"); !r) return r.error();
    return rep;
}

}  // namespace vtpm::setup
