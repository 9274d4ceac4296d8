// The C ABI (include/vtpm/vtpm.h) over the engine, store and dispatcher.
#include "vtpm/vtpm.h"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "attest/verify.hpp"
#include "core/dispatcher.hpp"
#include "engine/engine.hpp"
#include "hoststate/identity_records.hpp"
#include "store/state_store.hpp"
#include "tpm/public_key.hpp"
#include "util/ossl.hpp"
#include "util/uuid.hpp"
#include "vtpm_config.h"
#include "x509/tcg_cert.hpp"

struct vtpm_instance {
    std::unique_ptr<vtpm::engine::Engine> engine;
    std::unique_ptr<vtpm::core::Dispatcher> dispatcher;
    std::string last_error;
};

namespace {

thread_local std::string g_open_error;

uint32_t fail(vtpm_t* t, const vtpm::Error& e) {
    t->last_error = e.message;
    return e.code;
}

std::optional<vtpm::store::Key> make_key(const uint8_t* p, size_t n) {
    if (!p || n == 0) return std::nullopt;
    return vtpm::store::Key{vtpm::ByteView(p, n)};
}

uint8_t* copy_out(vtpm::ByteView v) {
    auto* p = static_cast<uint8_t*>(std::malloc(v.empty() ? 1 : v.size()));
    if (p && !v.empty()) std::memcpy(p, v.data(), v.size());
    return p;
}


std::vector<vtpm::X509Ptr> pem_certificates(const char* pem) {
    std::vector<vtpm::X509Ptr> out;
    if (!pem) return out;
    vtpm::BioPtr bio(BIO_new_mem_buf(pem, -1));
    while (bio) {
        X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
        if (!x) break;
        out.emplace_back(x);
    }
    ERR_clear_error();  // the end of the bundle reads as an error
    return out;
}

void put_json(char** out, const std::string& json) {
    if (!out) return;
    *out = static_cast<char*>(std::malloc(json.size() + 1));
    if (*out) std::memcpy(*out, json.c_str(), json.size() + 1);
}

uint32_t bad_param(char** out, const std::string& why) {
    put_json(out, "{\"ok\":false,\"failed_step\":\"parameters\",\"error\":\"" + why + "\"}");
    return vtpm::rc::kBadParameter;
}

}  // namespace

extern "C" {

const char* vtpm_version(void) { return VTPM_VERSION; }

const char* vtpm_open_error(void) { return g_open_error.c_str(); }

uint32_t vtpm_open(const vtpm_options* o, vtpm_t** out) {
    g_open_error.clear();
    if (!o || !out || o->struct_size < sizeof(vtpm_options) || !o->state_dir) {
        g_open_error = "vtpm_open: missing options, state_dir or output pointer";
        return vtpm::rc::kBadParameter;
    }
    for (size_t len : {o->state_key_len, o->migration_key_len}) {
        if (len != 0 && len != 16 && len != 32) {
            g_open_error = "vtpm_open: keys must be 16 or 32 bytes";
            return vtpm::rc::kBadKeyProperty;
        }
    }
    bool tpm2 = o->tpm_version != VTPM_TPM_1_2;
    auto st = vtpm::store::open_store(std::string("dir://") + o->state_dir, tpm2,
                                      o->state_file_mode ? o->state_file_mode : 0640,
                                      make_key(o->state_key, o->state_key_len));
    if (!st) {
        g_open_error = st.error().message;
        return st.code();
    }
    vtpm::engine::EngineConfig ec;
    ec.version = tpm2 ? vtpm::engine::TpmVersion::V2 : vtpm::engine::TpmVersion::V1_2;
    ec.auto_shutdown = (o->flags & VTPM_OPEN_NO_AUTO_SHUTDOWN) == 0;
    ec.reject_locality_4 = (o->flags & VTPM_OPEN_REJECT_LOCALITY_4) != 0;
    auto eng = vtpm::engine::Engine::create(ec, std::move(*st));
    if (!eng) {
        g_open_error = eng.error().message;
        return eng.code();
    }
    auto t = std::make_unique<vtpm_instance>();
    t->engine = std::move(*eng);
    vtpm::core::DispatcherConfig dc;
    dc.migration_key = make_key(o->migration_key, o->migration_key_len);
    t->dispatcher = std::make_unique<vtpm::core::Dispatcher>(*t->engine, std::move(dc));
    *out = t.release();
    return 0;
}

void vtpm_close(vtpm_t* t) {
    // Ownership came from vtpm_open's unique_ptr.
    std::unique_ptr<vtpm_instance> owned(t);
}

const char* vtpm_last_error(const vtpm_t* t) { return t ? t->last_error.c_str() : ""; }

uint32_t vtpm_init(vtpm_t* t, int delete_volatile) {
    auto r = t->engine->init(delete_volatile != 0);
    return r ? 0 : fail(t, r.error());
}

uint32_t vtpm_stop(vtpm_t* t) {
    t->engine->stop();
    return 0;
}

uint32_t vtpm_process(vtpm_t* t, const uint8_t* cmd, size_t cmd_len, uint8_t* rsp, size_t rsp_cap, size_t* rsp_len) {
    auto out = t->engine->command(vtpm::ByteView(cmd, cmd_len));
    if (out.size() > rsp_cap) return fail(t, {vtpm::rc::kSize, "response buffer too small"});
    std::memcpy(rsp, out.data(), out.size());
    *rsp_len = out.size();
    return 0;
}

uint32_t vtpm_ctrl(vtpm_t* t, const uint8_t* msg, size_t msg_len, uint8_t** rsp, size_t* rsp_len) {
    vtpm::core::TransportState ts;
    ts.data_channel_busy = true;  // no transport to hand a data fd to
    auto reply = t->dispatcher->handle_message(vtpm::ByteView(msg, msg_len), ts);
    *rsp = copy_out(reply.bytes);
    *rsp_len = reply.bytes.size();
    return *rsp ? 0 : fail(t, {vtpm::rc::kFail, "out of memory"});
}

uint32_t vtpm_get_state_blob(vtpm_t* t, int type, int decrypted, uint8_t** blob, size_t* blob_len,
                             uint32_t* state_flags) {
    if (type < 1 || type > 3) return fail(t, {vtpm::rc::kBadParameter, "unknown blob type"});
    auto b = t->dispatcher->export_blob(static_cast<vtpm::engine::BlobType>(type), decrypted != 0);
    if (!b) return fail(t, b.error());
    *blob = copy_out(b->bytes);
    *blob_len = b->bytes.size();
    if (state_flags) *state_flags = b->state_flags;
    return *blob ? 0 : fail(t, {vtpm::rc::kFail, "out of memory"});
}

uint32_t vtpm_set_state_blob(vtpm_t* t, int type, uint32_t state_flags, const uint8_t* blob, size_t blob_len) {
    if (type < 1 || type > 3) return fail(t, {vtpm::rc::kBadParameter, "unknown blob type"});
    auto r = t->dispatcher->import_blob(static_cast<vtpm::engine::BlobType>(type), state_flags,
                                        vtpm::ByteView(blob, blob_len));
    return r ? 0 : fail(t, r.error());
}

void vtpm_free(void* p) { std::free(p); }



uint32_t vtpm_verify_evidence(const vtpm_verify_params* p, char** report_json) {
    if (report_json) *report_json = nullptr;
    // The struct grows at its end; fields past an older caller's struct_size are unset.
    if (!p || p->struct_size < offsetof(vtpm_verify_params, owner_key_pem) || !p->nonce || !p->nonce_len ||
        !p->evidence)
        return bad_param(report_json, "missing parameters or an unknown struct_size");
    const char* owner_pem =
        p->struct_size >= offsetof(vtpm_verify_params, owner_key_pem) + sizeof p->owner_key_pem ? p->owner_key_pem
                                                                                                 : nullptr;
    auto ak = pem_certificates(p->host_ak_cert_pem);
    auto ca = pem_certificates(p->ca_pem);
    auto user = pem_certificates(p->user_cert_pem);
    if (ak.empty() || ca.empty() || user.empty()) return bad_param(report_json, "a certificate does not parse");
    vtpm::attest::VerifyInputs in;
    in.host_ak_cert = ak.front().get();
    for (const auto& c : ca) in.ca.push_back(c.get());
    auto der = vtpm::x509::to_der(user.front().get());
    if (!der) return bad_param(report_json, "the user certificate does not encode");
    in.user_cert_der = *der;
    in.nonce.assign(p->nonce, p->nonce + p->nonce_len);
    if (p->vm_uuid) {
        auto u = vtpm::canonical_uuid(p->vm_uuid);  // as vtpm-attest verify takes it
        if (!u) return bad_param(report_json, "vm_uuid: " + u.error().message);
        in.vm_uuid = *u;
    }
    // A host has PCRs 0-23: a mask naming others would leave no PCR required.
    if (p->required_host_pcrs >> 24) return bad_param(report_json, "required_host_pcrs names PCRs above 23");
    if (p->required_host_pcrs) {
        in.required_host_pcrs.clear();
        for (unsigned i = 0; i < 24; ++i)
            if (p->required_host_pcrs & (1u << i)) in.required_host_pcrs.push_back(i);
    }
    vtpm::PkeyPtr owner;
    if (owner_pem) {
        auto key = vtpm::tpm::parse_pem_key(vtpm::as_bytes(owner_pem), false, "the owner key");
        if (!key) return bad_param(report_json, "the owner key does not parse");
        owner = std::move(*key);
        in.owner_key = owner.get();
    }
    if (p->reference) {
        auto ref = vtpm::attest::parse_reference(p->reference);
        if (!ref) return bad_param(report_json, "reference values do not parse");
        in.reference = *ref;
    }
    if (p->host_record) {
        auto rec = vtpm::hoststate::parse_identity_record(p->host_record);
        if (!rec) return bad_param(report_json, "the host record does not parse");
        in.host_record = *rec;
    }
    const auto report = vtpm::attest::verify_evidence(in, vtpm::ByteView(p->evidence, p->evidence_len));
    put_json(report_json, vtpm::attest::report_json(report));
    return report.ok ? vtpm::rc::kSuccess : vtpm::rc::kFail;
}

}  // extern "C"
