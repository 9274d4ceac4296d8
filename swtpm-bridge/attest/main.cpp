// vtpm-attest: hardware-rooted VM identities (docs/architecture.md §2).
//   issue  [--hostd SOCKET] (--state-dir DIR [--key K] | --ctrl SOCK) --vm-uuid U
//          --user-cert certuser.pem --nonce HEX --out OUTDIR [--days N] [--adopt]
//          (the host's part is done by vtpm-hostd; this program never opens the host TPM)
//   quote  --tcti T --nonce HEX --out FILE [--pcrs LIST] [--eventlog FILE]...
//   verify --host-ak-cert FILE --ca PEMFILE --user-cert FILE --nonce HEX --evidence FILE
//          [--vm-uuid U] [--reference FILE] [--host-record FILE] [--host-pcrs LIST]
//          [--owner-key PEM] [--json]
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "hoststate/identity_records.hpp"
#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"
#include "attest/vaik_cert.hpp"
#include "attest/verify.hpp"
#include "x509/local_ca.hpp"
#include "x509/tcg_cert.hpp"
#include "issuance/host_identity.hpp"
#include "issuance/issue.hpp"
#include "issuance/quote.hpp"
#include "issuance/vtpm_channel.hpp"
#include "util/durable_file.hpp"

using namespace vtpm;

namespace {

constexpr const char* kDefaultEventLog = "/sys/kernel/security/tpm0/binary_bios_measurements";

int fail(const std::string& what) {
    std::fprintf(stderr, "vtpm-attest: %s\n", what.c_str());
    return 1;
}

int usage(int rc) {
    std::fprintf(rc ? stderr : stdout,
                 "usage:\n"
                 "  vtpm-attest issue  [--hostd SOCKET] (--state-dir DIR [--key KEYOPT] | --ctrl SOCKET)\n"
                 "                     --vm-uuid UUID --user-cert CERT.pem --nonce HEX --out OUTDIR\n"
                 "                     [--days N] [--adopt]\n"
                 "  vtpm-attest quote  [--tcti TCTI] --nonce HEX --out FILE [--pcrs 0,1,...] [--eventlog FILE]...\n"
                 "  vtpm-attest verify --host-ak-cert FILE --ca PEMFILE --user-cert CERT.pem --nonce HEX --vm-uuid UUID\n"
                 "                     --evidence FILE [--reference FILE] [--host-record FILE]\n"
                 "                     [--host-pcrs 0,1,...] [--owner-key PEM] [--json]\n");
    return rc;
}

Result<Bytes> read_file(const std::string& path) { return read_whole_file(path); }

Result<Bytes> user_cert_der(const std::string& path) {
    auto cert = x509::read_pem_certificate(path);
    if (!cert) return cert.error();
    return x509::to_der(cert->get());
}

Result<void> write_out(const std::string& path, ByteView data, mode_t mode = 0644) {
    return replace_file_durably(path + ".tmp", path, data, mode);
}

ByteView text_view(const std::string& s) { return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

// Options as name -> values (repeatable ones keep every value).
using Opts = std::map<std::string, std::vector<std::string>>;

Result<Opts> parse(int argc, char** argv, const std::vector<std::pair<const char*, bool>>& known) {
    std::vector<option> longopts;
    for (size_t i = 0; i < known.size(); ++i)
        longopts.push_back(
            {known[i].first, known[i].second ? required_argument : no_argument, nullptr, static_cast<int>(i + 256)});
    longopts.push_back({nullptr, 0, nullptr, 0});
    Opts o;
    optind = 2;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts.data(), nullptr)) != -1) {
        if (c < 256)
            return make_error(rc::kBadParameter, std::string("unknown or incomplete option ") + argv[optind - 1]);
        o[known[static_cast<size_t>(c - 256)].first].push_back(optarg ? optarg : "");
    }
    if (optind < argc) return make_error(rc::kBadParameter, std::string("unexpected argument ") + argv[optind]);
    return o;
}

std::optional<std::string> one(const Opts& o, const char* name) {
    auto it = o.find(name);
    if (it == o.end()) return std::nullopt;
    return it->second.back();
}

int cmd_issue(int argc, char** argv) {
    auto o = parse(argc, argv, {{"hostd", true}, {"state-dir", true}, {"key", true}, {"ctrl", true},
                                {"vm-uuid", true}, {"user-cert", true}, {"nonce", true}, {"out", true},
                                {"days", true}, {"adopt", false}});
    if (!o) return fail(o.error().message);
    for (const char* need : {"vm-uuid", "user-cert", "nonce", "out"})
        if (!one(*o, need)) return fail(std::string("issue: --") + need + " is required");
    if (!!one(*o, "state-dir") == !!one(*o, "ctrl")) return fail("issue: give exactly one of --state-dir and --ctrl");
    issuance::IssueRequest req;
    req.vm_uuid = *one(*o, "vm-uuid");
    req.adopt = o->count("adopt") > 0;
    auto nonce = from_hex(*one(*o, "nonce"));
    if (!nonce) return fail("issue: --nonce is not hex");
    req.nonce = *nonce;
    auto user = user_cert_der(*one(*o, "user-cert"));
    if (!user) return fail("issue: --user-cert: " + user.error().message);
    req.user_cert_der = *user;
    if (auto d = one(*o, "days")) req.days = std::atoi(d->c_str());
    const std::string out = *one(*o, "out");
    if (mkdir(out.c_str(), 0755) != 0 && errno != EEXIST)
        return fail("cannot create " + out + ": " + std::strerror(errno));

    const hostapi::Client hostd(one(*o, "hostd").value_or(hostapi::kDefaultSocket));
    auto ch = one(*o, "ctrl") ? issuance::connect_ctrl(*one(*o, "ctrl"))
                              : issuance::open_offline(*one(*o, "state-dir"), one(*o, "key"));
    if (!ch) return fail(ch.error().message);
    auto res = issuance::issue_identity(hostd, **ch, req);
    if (!res) return fail("issue: " + res.error().message);
    auto cert = x509::parse_der_certificate(res->vaik_cert_der);
    auto pem = cert ? x509::to_pem(cert->get()) : Result<std::string>(cert.error());
    if (!pem) return fail(pem.error().message);
    for (auto [name, data] : {std::pair{"cert-vaik.der", ByteView(res->vaik_cert_der)},
                              {"cert-vaik.pem", text_view(*pem)},
                              {"identity-bundle.bin", ByteView(res->bundle)},
                              {"vaik.pub", ByteView(res->vaik_public)}})
        if (auto r = write_out(out + "/" + name, data); !r) return fail(r.error().message);
    std::printf("VM %s: identity generation %llu issued on %s (vAIK %s); CertvAIK in NV 0x01c10100, "
                "identity bundle in NV 0x01c10101; copies in %s\n",
                req.vm_uuid.c_str(), static_cast<unsigned long long>(res->generation), (*ch)->describe().c_str(),
                res->vaik_created ? "created" : "kept", out.c_str());
    return 0;
}

int cmd_quote(int argc, char** argv) {
    auto o = parse(argc, argv, {{"tcti", true}, {"nonce", true}, {"out", true}, {"pcrs", true}, {"eventlog", true},
                                {"no-eventlog", false}});
    if (!o) return fail(o.error().message);
    if (!one(*o, "nonce") || !one(*o, "out")) return fail("quote: --nonce and --out are required");
    issuance::QuoteRequest req;
    auto nonce = from_hex(*one(*o, "nonce"));
    if (!nonce) return fail("quote: --nonce is not hex");
    req.nonce = *nonce;
    if (auto p = one(*o, "pcrs")) {
        auto pcrs = tpm::parse_pcr_list(*p);
        if (!pcrs) return fail("quote: --pcrs: " + pcrs.error().message);
        req.pcrs = *pcrs;
    }
    if (o->count("eventlog")) {
        for (const auto& f : o->at("eventlog")) {
            auto log = read_file(f);
            if (!log) return fail("quote: --eventlog: " + log.error().message);
            req.event_logs.push_back(*log);
        }
    } else if (!o->count("no-eventlog") && access(kDefaultEventLog, R_OK) == 0) {
        // securityfs files report size 0: read in chunks.
        FILE* f = std::fopen(kDefaultEventLog, "rb");
        Bytes log;
        uint8_t buf[65536];
        size_t n;
        while (f && (n = std::fread(buf, 1, sizeof buf, f)) > 0) log.insert(log.end(), buf, buf + n);
        if (f) std::fclose(f);
        if (!log.empty()) req.event_logs.push_back(std::move(log));
    }
    auto tpm = hosttpm::Esys::open(one(*o, "tcti").value_or("device:/dev/tpmrm0"));
    if (!tpm) return fail(tpm.error().message);
    auto ev = issuance::make_evidence(**tpm, req);
    if (!ev) return fail("quote: " + ev.error().message);
    if (auto r = write_out(*one(*o, "out"), attest::encode_evidence(*ev)); !r) return fail(r.error().message);
    std::printf("evidence: quote over %zu PCRs, %zu event log(s), written to %s\n", ev->pcrs.size(),
                ev->event_logs.size(), one(*o, "out")->c_str());
    return 0;
}

int cmd_verify(int argc, char** argv) {
    auto o = parse(argc, argv, {{"host-ak-cert", true}, {"ca", true}, {"user-cert", true}, {"nonce", true},
                                {"evidence", true}, {"vm-uuid", true}, {"reference", true}, {"host-record", true},
                                {"host-pcrs", true}, {"owner-key", true}, {"json", false}});
    if (!o) return fail(o.error().message);
    for (const char* need : {"host-ak-cert", "ca", "user-cert", "nonce", "evidence", "vm-uuid"})
        if (!one(*o, need)) return fail(std::string("verify: --") + need + " is required");
    attest::VerifyInputs in;
    auto ak = x509::read_pem_certificate(*one(*o, "host-ak-cert"));
    if (!ak) return fail("verify: --host-ak-cert: " + ak.error().message);
    in.host_ak_cert = ak->get();
    auto ca = x509::read_pem_certificates(*one(*o, "ca"));
    if (!ca) return fail("verify: --ca: " + ca.error().message);
    for (int i = 0; i < sk_X509_num(ca->get()); ++i) in.ca.push_back(sk_X509_value(ca->get(), i));
    auto user = user_cert_der(*one(*o, "user-cert"));
    if (!user) return fail("verify: --user-cert: " + user.error().message);
    in.user_cert_der = *user;
    auto nonce = from_hex(*one(*o, "nonce"));
    if (!nonce || nonce->empty()) return fail("verify: --nonce is not hex");
    in.nonce = *nonce;
    if (auto u = one(*o, "vm-uuid")) {
        auto c = canonical_uuid(*u);
        if (!c) return fail("verify: --vm-uuid: " + c.error().message);
        in.vm_uuid = *c;
    }
    if (auto p = one(*o, "host-pcrs")) {
        auto pcrs = tpm::parse_pcr_list(*p);
        if (!pcrs) return fail("verify: --host-pcrs: " + pcrs.error().message);
        in.required_host_pcrs = *pcrs;
    }
    vtpm::PkeyPtr owner;
    if (auto f = one(*o, "owner-key")) {
        auto pem = read_file(*f);
        if (!pem) return fail("verify: --owner-key: " + pem.error().message);
        auto key = tpm::parse_pem_key(*pem, false, *f);
        if (!key) return fail("verify: --owner-key: " + key.error().message);
        owner = std::move(*key);
        in.owner_key = owner.get();
    }
    if (auto f = one(*o, "reference")) {
        auto text = read_file(*f);
        if (!text) return fail("verify: --reference: " + text.error().message);
        auto ref = attest::parse_reference(std::string_view(reinterpret_cast<const char*>(text->data()), text->size()));
        if (!ref) return fail("verify: --reference: " + ref.error().message);
        in.reference = *ref;
    }
    if (auto f = one(*o, "host-record")) {
        auto text = read_file(*f);
        if (!text) return fail("verify: --host-record: " + text.error().message);
        auto rec = hoststate::parse_identity_record(std::string_view(reinterpret_cast<const char*>(text->data()), text->size()));
        if (!rec) return fail("verify: --host-record: " + rec.error().message);
        in.host_record = *rec;
    }
    auto evidence = read_file(*one(*o, "evidence"));
    if (!evidence) return fail("verify: --evidence: " + evidence.error().message);
    const attest::Report rep = attest::verify_evidence(in, *evidence);
    if (o->count("json")) std::printf("%s\n", attest::report_json(rep).c_str());
    else std::fputs(attest::report_table(rep).c_str(), stdout);
    if (!rep.ok) {
        std::string detail;
        for (const auto& s : rep.steps)
            if (s.id == rep.failed_step) detail = s.detail;
        std::fprintf(stderr, "vtpm-attest: verification failed at step %s: %s\n", rep.failed_step.c_str(),
                     detail.c_str());
    }
    return rep.ok ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage(2);
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h") return usage(0);
    // tpm2-tss logs expected failures (probing empty handles) as errors.
    setenv("TSS2_LOG", "all+none", 0);
    if (cmd == "issue") return cmd_issue(argc, argv);
    if (cmd == "quote") return cmd_quote(argc, argv);
    if (cmd == "verify") return cmd_verify(argc, argv);
    return usage(2);
}
