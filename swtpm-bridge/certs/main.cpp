// vtpm-certs: show and verify the certificates a vTPM was manufactured with.
//   vtpm-certs show --tpmstate dir=DIR|file=PATH [--tpm2] [--key KEYOPTS]
//                   [--ca-dir DIR | --root PEM [--untrusted PEM]] [--out-dir DIR]
//   vtpm-certs verify --cert FILE (--ca-dir DIR | --root PEM [--untrusted PEM])
// `show` reads a copy of the state in memory (the state on disk is never
// written, so it also works while the VM runs); exit status 0 only if every
// certificate found verifies, follows the TCG profile and certifies its key.
#include <getopt.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "x509/cert_check.hpp"
#include "x509/local_ca.hpp"
#include "tpm/public_key.hpp"
#include "setup/manufacture.hpp"
#include "tpm/commands.hpp"
#include "util/durable_file.hpp"
#include "store/key.hpp"
#include "store/state_store.hpp"

using namespace vtpm;

namespace {

struct Trust {
    std::vector<vtpm::X509Ptr> owned;
    std::vector<const X509*> roots, untrusted;
};

Result<void> add_file(const std::string& path, Trust& t, bool root) {
    auto certs = x509::read_pem_certificates(path);
    if (!certs) return certs.error();
    while (sk_X509_num(certs->get()) > 0) {
        vtpm::X509Ptr c(sk_X509_shift(certs->get()));
        (root ? t.roots : t.untrusted).push_back(c.get());
        t.owned.push_back(std::move(c));
    }
    return {};
}

Result<vtpm::X509Ptr> read_any_cert(const std::string& path) {
    auto bytes = read_whole_file(path);
    if (!bytes) return make_error(bytes.code(), path + ": " + bytes.error().message);
    if (auto der = x509::parse_der_certificate(*bytes)) return std::move(*der);
    return x509::read_pem_certificate(path);
}

int check_one(const X509* cert, x509::CertKind kind, const Trust& t, EVP_PKEY* key, const char* label) {
    int bad = 0;
    std::printf("%s: %s\n", label, x509::summarize(cert).c_str());
    if (auto f = x509::check_tcg_profile(cert, kind)) {
        if (kind == x509::CertKind::Ek)
            std::printf("  TPM %s model %s version %s, spec %s level %llu revision %llu\n", f->tpm.manufacturer.c_str(),
                        f->tpm.model.c_str(), f->tpm.version.c_str(), f->spec->family.c_str(),
                        static_cast<unsigned long long>(f->spec->level),
                        static_cast<unsigned long long>(f->spec->revision));
        else
            std::printf("  platform %s model %s version %s\n", f->platform.manufacturer.c_str(),
                        f->platform.model.c_str(), f->platform.version.c_str());
    } else {
        std::printf("  FAIL profile: %s\n", f.error().message.c_str());
        bad = 1;
    }
    if (key) {
        if (auto r = x509::check_certifies_key(cert, key)) std::printf("  certifies the key in the TPM\n");
        else std::printf("  FAIL key: %s\n", r.error().message.c_str()), bad = 1;
    }
    if (!t.roots.empty()) {
        if (auto chain = x509::verify_chain(cert, t.untrusted, t.roots)) {
            std::printf("  chain:");
            for (const auto& s : *chain) std::printf(" [%s]", s.c_str());
            std::printf("\n");
        } else {
            std::printf("  FAIL chain: %s\n", chain.error().message.c_str());
            bad = 1;
        }
    }
    return bad;
}

int usage(int rc) {
    std::fprintf(rc ? stderr : stdout,
                 "usage: vtpm-certs show --tpmstate dir=DIR|file=PATH [--tpm2] [--key KEYOPTS]\n"
                 "                       [--ca-dir DIR | --root PEM [--untrusted PEM]] [--out-dir DIR]\n"
                 "       vtpm-certs verify --cert FILE (--ca-dir DIR | --root PEM [--untrusted PEM])\n");
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage(2);
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h") return usage(0);
    if (cmd != "show" && cmd != "verify") return usage(2);
    static const struct option longopts[] = {
        {"tpmstate", required_argument, nullptr, 's'}, {"tpm2", no_argument, nullptr, '2'},
        {"key", required_argument, nullptr, 'k'},      {"ca-dir", required_argument, nullptr, 'c'},
        {"root", required_argument, nullptr, 'r'},     {"untrusted", required_argument, nullptr, 'u'},
        {"out-dir", required_argument, nullptr, 'o'},  {"cert", required_argument, nullptr, 'f'},
        {nullptr, 0, nullptr, 0}};
    std::string state, keyopt, out_dir, cert_file;
    bool tpm2 = false;
    Trust trust;
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
        Result<void> r;
        switch (c) {
            case 's': state = optarg; break;
            case '2': tpm2 = true; break;
            case 'k': keyopt = optarg; break;
            case 'c':
                r = add_file(std::string(optarg) + "/" + x509::kCaRootCert, trust, true);
                if (r) r = add_file(std::string(optarg) + "/" + x509::kCaIssuerCert, trust, false);
                break;
            case 'r': r = add_file(optarg, trust, true); break;
            case 'u': r = add_file(optarg, trust, false); break;
            case 'o': out_dir = optarg; break;
            case 'f': cert_file = optarg; break;
            default: return usage(2);
        }
        if (!r) {
            std::fprintf(stderr, "vtpm-certs: %s\n", r.error().message.c_str());
            return 2;
        }
    }
    if (cmd == "verify") {
        if (cert_file.empty() || trust.roots.empty()) return usage(2);
        auto cert = read_any_cert(cert_file);
        if (!cert) return std::fprintf(stderr, "vtpm-certs: %s\n", cert.error().message.c_str()), 2;
        auto f = x509::read_tcg_fields(cert->get());
        const auto kind = f && f->kind == x509::CertKind::Platform ? x509::CertKind::Platform : x509::CertKind::Ek;
        return check_one(cert->get(), kind, trust, nullptr, cert_file.c_str());
    }
    if (state.empty()) return usage(2);
    std::string uri = state;
    if (uri.rfind("dir=", 0) == 0) uri = "dir://" + uri.substr(4);
    else if (uri.rfind("file=", 0) == 0) uri = "file://" + uri.substr(5);
    std::optional<store::Key> key;
    if (!keyopt.empty()) {
        auto k = store::load_key_option(keyopt);
        if (!k) return std::fprintf(stderr, "vtpm-certs: --key: %s\n", k.error().message.c_str()), 2;
        key = std::move(*k);
    }
    auto disk = store::open_store(uri, tpm2, 0600, std::move(key));
    if (!disk) return std::fprintf(stderr, "vtpm-certs: %s\n", disk.error().message.c_str()), 2;
    auto perm = (*disk)->load(store::kPermall);
    if (!perm) return std::fprintf(stderr, "vtpm-certs: cannot read the state: %s\n", perm.error().message.c_str()), 2;
    auto mem = store::make_memory_store();
    (void)mem->store(store::kPermall, *perm);
    engine::EngineConfig ec;
    ec.version = tpm2 ? engine::TpmVersion::V2 : engine::TpmVersion::V1_2;
    ec.auto_shutdown = false;
    auto eng = engine::Engine::create(ec, std::move(mem));
    if (!eng || !(*eng)->init(false) || !(*eng)->startup(0))
        return std::fprintf(stderr, "vtpm-certs: the state does not start\n"), 2;
    if (!tpm2) return std::fprintf(stderr, "vtpm-certs: show supports TPM 2.0 states (use --tpm2)\n"), 2;
    namespace t = tpm;
    const struct { uint32_t index, handle; x509::CertKind kind; const char* label; } slots[] = {
        {t::kNvRsa2048EkCert, t::kEkRsa2048Handle, x509::CertKind::Ek, "EK rsa2048 (0x01c00002)"},
        {t::kNvEccP256EkCert, t::kEkEccP256Handle, x509::CertKind::Ek, "EK secp256r1 (0x01c0000a)"},
        {t::kNvRsa3072EkCert, t::kEkRsa3072Handle, x509::CertKind::Ek, "EK rsa3072 (0x01c0001c)"},
        // Where swtpm_setup 0.7.1 puts its ECC EK (NIST P-384, high range).
        {0x01c00016, 0x81010016, x509::CertKind::Ek, "EK secp384r1 (0x01c00016)"},
        {t::kNvPlatformCert, t::kEkRsa2048Handle, x509::CertKind::Platform, "platform (0x01c08000)"},
    };
    int bad = 0, found = 0;
    for (const auto& s : slots) {
        auto der = setup::tpm2_read_nv(**eng, s.index);
        if (!der) continue;
        ++found;
        auto cert = x509::parse_der_certificate(*der);
        if (!cert) {
            std::printf("%s: FAIL: %s\n", s.label, cert.error().message.c_str());
            bad = 1;
            continue;
        }
        vtpm::PkeyPtr key_in_tpm;
        if (auto pub = t::parse_read_public((*eng)->command(t::read_public(s.handle))))
            if (auto k = tpm::pkey_from_tpm_public(*pub)) key_in_tpm = std::move(*k);
        bad |= check_one(cert->get(), s.kind, trust, key_in_tpm.get(), s.label);
        if (!out_dir.empty()) {
            auto pem = x509::to_pem(cert->get());
            char name[64];
            std::snprintf(name, sizeof(name), "/nv-%08x.pem", s.index);
            if (pem)
                (void)replace_file_durably(out_dir + name + ".tmp", out_dir + name,
                                           ByteView(reinterpret_cast<const uint8_t*>(pem->data()), pem->size()), 0644);
        }
    }
    (*eng)->stop();
    if (!found) std::printf("no certificates in the standard NV indices\n");
    return bad;
}
