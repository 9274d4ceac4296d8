// vtpm-setup: a drop-in for swtpm_setup that manufactures the vTPM inside
// this process (libtpms in-process, certificates from an x509::Issuer)
// and replaces the state directory's contents in one atomic write at the end.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>

#include "issuance/hostd_authority.hpp"
#include "common/capabilities.hpp"
#include "engine/engine.hpp"
#include "x509/cert_check.hpp"
#include "x509/local_ca.hpp"
#include "common/process.hpp"
#include "setup/manufacture.hpp"
#include "setup/config.hpp"
#include "setup/options.hpp"
#include "util/durable_file.hpp"
#include "store/key.hpp"
#include "store/state_store.hpp"

using namespace vtpm;
using namespace vtpm::bridge;

namespace {

// swtpm_setup's logging: informational lines to the log file or stdout,
// errors to the log file or stderr. Never passed secrets.
class SetupLog {
public:
    Result<void> open(const std::string& path) {
        struct stat st;
        if (lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
            return make_error(rc::kFail, "Logfile must not be a symlink.");
        f_ = std::fopen(path.c_str(), "a");
        if (!f_) return make_error(rc::kFail, "Cannot write to logfile " + path + ".");
        return {};
    }
    ~SetupLog() {
        if (f_) std::fclose(f_);
    }
    void info(const std::string& line) { put(f_ ? f_ : stdout, line); }
    void error(const std::string& line) {
        put(f_ ? f_ : stderr, line);
        if (f_) put(stderr, line);  // libvirt reports stderr text of a failed run
    }

private:
    static void put(FILE* f, const std::string& line) {
        std::fprintf(f, "%s\n", line.c_str());
        std::fflush(f);
    }
    FILE* f_ = nullptr;
};

std::string now_text() {
    char buf[100];
    const time_t t = time(nullptr);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%a %d %h %Y %I:%M:%S %p %Z", &tm);
    return buf;
}

std::string who() {
    const passwd* pw = getpwuid(getuid());
    const group* gr = getgrgid(getgid());
    return std::string(pw ? pw->pw_name : "<unknown>") + ":" + (gr ? gr->gr_name : "<unknown>");
}

// TPM 1.2 owner/SRK secret: SHA-1 of the password, or 20 zero bytes.
Bytes tpm12_secret(const std::optional<std::string>& pass, bool well_known, const char* fallback) {
    Bytes d(SHA_DIGEST_LENGTH, 0);
    if (well_known) return d;
    const std::string p = pass ? *pass : fallback;
    SHA1(reinterpret_cast<const unsigned char*>(p.data()), p.size(), d.data());
    return d;
}

std::vector<std::string> split_banks(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string tok;
    while (std::getline(ss, tok, ',')) {
        tok.erase(0, tok.find_first_not_of(" \t"));
        tok.erase(tok.find_last_not_of(" \t") + 1);
        if (!tok.empty()) out.push_back(tok);
    }
    return out;
}

// The --key value swtpm_setup would hand to swtpm, read in-process.
Result<std::optional<store::Key>> load_key(const SetupOptions& o) {
    std::string opt;
    if (o.keyfile) {
        if (access(o.keyfile->c_str(), R_OK) != 0)
            return make_error(rc::kFail, "User " + who() + " cannot read keyfile " + *o.keyfile + ".");
        opt = "file=" + *o.keyfile;
    } else if (o.pwdfile) {
        if (access(o.pwdfile->c_str(), R_OK) != 0)
            return make_error(rc::kFail, "User " + who() + " cannot read passphrase file " + *o.pwdfile + ".");
        opt = "pwdfile=" + *o.pwdfile;
    } else if (o.keyfile_fd >= 0) {
        opt = "fd=" + std::to_string(o.keyfile_fd);
    } else if (o.pwdfile_fd >= 0) {
        opt = "pwdfd=" + std::to_string(o.pwdfile_fd);
    } else {
        return std::optional<store::Key>{};
    }
    auto key = store::load_key_option(opt + ",mode=" + o.cipher);
    if (!key) return make_error(key.code(), "state key: " + key.error().message);
    return std::optional<store::Key>(std::move(*key));
}

Result<unsigned> rsa_bits(const SetupOptions& o) {
    std::vector<unsigned> sizes;
    if (o.tpm2) sizes = rsa_key_sizes();
    if (o.rsa_keysize == "max") return sizes.empty() ? 2048u : sizes.back();
    if (o.rsa_keysize == "2048") return 2048u;
    if (o.rsa_keysize == "3072") {
        for (unsigned s : sizes)
            if (s == 3072) return 3072u;
        return make_error(rc::kFail, "3072 bit RSA keys are not supported by libtpms.");
    }
    return make_error(rc::kFail, "Unsupported RSA key size " + o.rsa_keysize + ".");
}

Result<void> write_ek_cert_files(const std::string& dir, const setup::ManufactureReport& rep) {
    for (const auto& c : rep.certs) {
        if (c.kind != x509::CertKind::Ek) continue;
        const std::string path = dir + "/ek-" + c.key_description + ".crt";
        if (auto r = replace_file_durably(path + ".tmp", path, c.der, 0640); !r) return r;
    }
    return {};
}

void display(const setup::ManufactureReport& rep, x509::CertAuthority* issuer) {
    for (const auto& c : rep.certs) {
        auto cert = x509::parse_der_certificate(c.der);
        if (!cert) continue;
        std::printf("%s certificate (NV index 0x%08x, %zu bytes): %s\n",
                    c.kind == x509::CertKind::Ek ? ("EK " + c.key_description).c_str() : "platform", c.nv_index,
                    c.der.size(), x509::summarize(cert->get()).c_str());
        if (issuer) {
            auto all = issuer->chain();
            std::vector<const X509*> middle(all.begin(), all.end() - 1);
            auto chain = x509::verify_chain(cert->get(), middle, {all.back()});
            if (chain) {
                std::printf("  chain verified:");
                for (const auto& s : *chain) std::printf(" [%s]", s.c_str());
                std::printf("\n");
            } else {
                std::printf("  chain NOT verified: %s\n", chain.error().message.c_str());
            }
        }
    }
    if (!rep.active_banks.empty()) {
        std::printf("Active PCR banks:");
        for (const auto& b : rep.active_banks) std::printf(" %s", b.c_str());
        std::printf("\n");
    }
}

int run(const SetupOptions& o, SetupLog& log) {
    if (o.state_uri.empty()) {
        log.error("--tpm-state must be provided");
        return 1;
    }
    if (o.tpm2 && o.take_ownership) return log.error("Taking ownership is not supported for TPM 2."), 1;
    if (!o.tpm2) {
        if (o.ecc) return log.error("--ecc requires --tpm2."), 1;
        if (o.create_spk) return log.error("--create-spk requires --tpm2."), 1;
        if (o.reconfigure) return log.error("--reconfigure requires --tpm2."), 1;
    }
    if (o.write_ek_cert_files && access(o.write_ek_cert_files->c_str(), W_OK) != 0)
        return log.error("User " + who() + " cannot write to directory " + *o.write_ek_cert_files + "."), 1;
    if (o.reconfigure && (o.create_ek || o.ek_cert || o.platform_cert))
        return log.error("Reconfiguration is not supported with creation of EK or certificates"), 1;
    if (o.cipher != "aes-128-cbc" && o.cipher != "aes-cbc" && o.cipher != "aes-256-cbc")
        return log.error("Unsupported cipher " + o.cipher + "."), 1;

    const std::string config_path = o.config ? *o.config : default_config_path();
    auto cfg = load_setup_config(config_path, o.config.has_value());
    if (!cfg) return log.error(cfg.error().message), 1;
    auto key = load_key(o);
    if (!key) return log.error(key.error().message), 1;
    auto bits = rsa_bits(o);
    if (!bits) return log.error(bits.error().message), 1;

    setup::ManufactureOptions m;
    m.create_ek = o.create_ek;
    m.ek_cert = o.ek_cert;
    m.platform_cert = o.platform_cert;
    m.lock_nvram = o.lock_nvram;
    m.create_spk = o.create_spk;
    m.ecc_spk = o.ecc;
    m.allow_signing = o.allow_signing;
    m.decryption = o.decryption;
    m.rsa_bits = *bits;
    m.reconfigure = o.reconfigure;
    m.vmid = o.vmid.value_or("");
    m.platform = {cfg->platform_manufacturer, cfg->platform_model, cfg->platform_version};
    m.cert_days = cfg->cert_validity_days;
    m.take_ownership = o.take_ownership;
    m.owner_auth = tpm12_secret(o.ownerpass, o.owner_well_known, "ooo");
    m.srk_auth = tpm12_secret(o.srkpass, o.srk_well_known, "sss");
    if (o.tpm2) {
        const std::string banks = split_banks(o.pcr_banks).empty() ? cfg->active_pcr_banks : o.pcr_banks;
        if (banks != "-") m.pcr_banks = split_banks(banks);
    }

    if (key->has_value()) {
        log.info(o.keyfile || o.keyfile_fd >= 0
                     ? "  The TPM's state will be encrypted with a provided key."
                     : "  The TPM's state will be encrypted using a key derived from a passphrase.");
    }
    // The real store: locked for the whole run, written once at the end.
    auto target = store::open_store(o.state_uri, o.tpm2, 0640, std::move(*key));
    if (!target) return log.error(target.error().message), 1;
    if (auto r = (*target)->lock(); !r) return log.error(r.error().message), 1;
    auto existing = (*target)->list();
    if (!existing) return log.error(existing.error().message), 1;
    bool has_state = false;
    for (const auto& e : *existing) has_state |= e.name == store::kPermall;
    auto memory = store::make_memory_store();
    if (o.reconfigure) {
        if (!has_state) return log.error("No TPM state to reconfigure in " + o.state_uri + "."), 1;
        auto perm = (*target)->load(store::kPermall);
        if (!perm) return log.error("Could not read the existing state: " + perm.error().message), 1;
        if (auto r = memory->store(store::kPermall, *perm); !r) return log.error(r.error().message), 1;
    } else if (has_state) {
        if (o.not_overwrite) return log.info("Not overwriting existing state file."), 0;
        if (!o.overwrite) return log.error("Found existing TPM state 'permall'."), 1;
    }

    log.info(std::string("Starting vTPM ") + (o.reconfigure ? "reconfiguration" : "manufacturing") + " as " + who() +
             " @ " + now_text());
    // Who signs: the local CA, or the hardware TPM's AuthKey so that the EK
    // chain ends in the host's TPM (certificate_issuer = hosttpm).
    std::unique_ptr<x509::LocalCa> local_ca;
    std::unique_ptr<x509::CertAuthority> ca;
    if ((m.ek_cert || m.platform_cert) && cfg->issuer == "hosttpm") {
        auto opened = issuance::HostdAuthority::open(cfg->host_socket);
        if (!opened) return log.error(opened.error().message), 1;
        ca = std::move(*opened);
    } else if (m.ek_cert || m.platform_cert) {
        auto opened = x509::LocalCa::open(cfg->localca_dir);
        if (!opened)
            return log.error(opened.error().message + " (vtpm-setup runs as uid " + std::to_string(geteuid()) +
                             "; the local CA directory must be writable by it: `meson install` makes " +
                             "/var/lib/libvtpm/localca for tss, libvirt's swtpm_user; or set localca_dir in " +
                             (cfg->path.empty() ? std::string("vtpm-setup.conf") : cfg->path) +
                             ", or run vtpm-setup --create-config-files for a CA of your own)"),
                   1;
        local_ca = std::move(*opened);
        ca = std::make_unique<x509::IssuerAuthority>(*local_ca);
    }

    engine::EngineConfig ec;
    ec.version = o.tpm2 ? engine::TpmVersion::V2 : engine::TpmVersion::V1_2;
    ec.auto_shutdown = false;
    auto eng = engine::Engine::create(ec, std::move(memory));
    if (!eng) return log.error(eng.error().message), 1;
    auto& e = **eng;
    Result<setup::ManufactureReport> rep = make_error(rc::kFail, "not run");
    if (auto r = e.init(false); !r) rep = r.error();
    else if (auto s = e.startup(0); !s) rep = s.error();
    else rep = o.tpm2 ? setup::manufacture_tpm2(e, m, ca.get()) : setup::manufacture_tpm12(e, m, ca.get());
    e.stop();
    if (!rep) {
        log.error(rep.error().message);
        log.error("An error occurred. Authoring the TPM state failed.");
        return 1;
    }
    for (const auto& line : rep->events) log.info(line);
    auto perm = e.store().load(store::kPermall);
    if (!perm) return log.error("libtpms wrote no permanent state: " + perm.error().message), 1;
    // One atomic replacement; stale volatile/savestate of an old state go too.
    if (auto r = (*target)->replace(store::kPermall, *perm); !r) return log.error(r.error().message), 1;
    for (auto n : {store::kVolatile, store::kSavestate})
        if (auto r = (*target)->remove(n, false); !r) return log.error(r.error().message), 1;
    if (o.write_ek_cert_files) {
        if (auto r = write_ek_cert_files(*o.write_ek_cert_files, *rep); !r) return log.error(r.error().message), 1;
    }
    if (o.display) display(*rep, ca.get());
    log.info("Successfully authored TPM state.");
    log.info("Ending vTPM manufacturing @ " + now_text());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    auto o = parse_setup_options(argc, argv);
    if (!o) {
        std::fprintf(stderr, "%s\n", o.error().message.c_str());
        return 1;
    }
    for (const auto& w : o->warnings) std::printf("%s\n", w.c_str());
    switch (o->action) {
        case SetupOptions::Action::Help:
            std::printf("%s", setup_usage(argv[0], default_config_path()).c_str());
            return o->bad_usage ? 1 : 0;
        case SetupOptions::Action::Version:
            std::printf("%s", setup_version_line().c_str());
            return 0;
        case SetupOptions::Action::PrintCapabilities:
            std::printf("%s\n", setup_capabilities_json().c_str());
            return 0;
        case SetupOptions::Action::CreateConfigFiles:
            if (auto r = create_config_files(*o->create_config_files); !r) {
                std::fprintf(stderr, "%s\n", r.error().message.c_str());
                return 1;
            }
            return 0;
        case SetupOptions::Action::Manufacture: break;
    }
    if (o->runas) {
        if (auto r = switch_user(*o->runas); !r) {
            std::fprintf(stderr, "%s\n", r.error().message.c_str());
            return 1;
        }
    }
    if (auto r = harden_process(); !r) {  // it holds state keys and a CA key
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return 1;
    }
    SetupLog log;
    if (o->logfile) {
        if (auto r = log.open(*o->logfile); !r) {
            std::fprintf(stderr, "%s\n", r.error().message.c_str());
            return 1;
        }
    }
    return run(*o, log);
}
