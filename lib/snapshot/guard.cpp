#include "snapshot/guard.hpp"

#include <chrono>
#include <ctime>
#include <utility>

#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"
#include "snapshot/vtpm_pcrs.hpp"
#include "store/blob.hpp"
#include "store/state_store.hpp"
#include "util/log.hpp"

namespace vtpm::snapshot {

namespace {

constexpr size_t kListedPages = 8;

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string page_list(const std::vector<uint64_t>& pages) {
    std::string s;
    for (uint64_t p : pages) {
        char b[64];
        std::snprintf(b, sizeof b, "%s%llu (0x%llx)", s.empty() ? "" : ", ", static_cast<unsigned long long>(p),
                      static_cast<unsigned long long>(p * 4096));
        s += b;
    }
    return s;
}

// The vAIK quote in a record must be over exactly the recorded vPCRs and
// this record's qualifying data.
Result<void> check_quote(const SnapshotRecord& r) {
    auto pub = tpm::unmarshal_public(r.vaik_public);
    if (!pub) return make_error(rc::kFail, "the record's vAIK public key is malformed");
    auto key = tpm::pkey_from_tpm_public(*pub);
    if (!key) return key.error();
    auto sig = tpm::unmarshal_signature(r.quote_signature);
    if (!sig) return make_error(rc::kFail, "the record's vAIK quote signature is malformed");
    if (auto v = tpm::verify_signature(key->get(), r.quote_attest, *sig); !v)
        return make_error(rc::kFail, "the vAIK quote signature does not verify: " + v.error().message);
    auto att = tpm::parse_attest(r.quote_attest);
    if (!att || att->type != TPM2_ST_ATTEST_QUOTE) return make_error(rc::kFail, "the vAIK quote is not a TPM2_Quote");
    const Digest q = quote_qualifying_data(r);
    if (att->extraData.size != q.size() || !std::equal(q.begin(), q.end(), att->extraData.buffer))
        return make_error(rc::kFail, "the vAIK quote is over another snapshot (qualifying data differs)");
    const Digest p = pcr_values_digest(r);
    const auto& pd = att->attested.quote.pcrDigest;
    if (pd.size != p.size() || !std::equal(p.begin(), p.end(), pd.buffer))
        return make_error(rc::kFail, "the vAIK quote is over other vPCR values than the record lists");
    return {};
}

}  // namespace

Result<Policy> parse_policy(std::string_view text) {
    if (text == "refuse") return Policy::Refuse;
    if (text == "taint") return Policy::Taint;
    if (text == "skip") return Policy::Skip;
    return make_error(rc::kBadParameter, "unknown policy '" + std::string(text) + "' (refuse, taint or skip)");
}

std::string_view policy_name(Policy p) {
    switch (p) {
        case Policy::Refuse: return "refuse";
        case Policy::Taint: return "taint";
        case Policy::Skip: return "skip";
    }
    return "?";
}

SnapshotGuard::SnapshotGuard(GuardConfig cfg, std::unique_ptr<RecordSigner> signer,
                             std::unique_ptr<SnapshotLedger> ledger)
    : cfg_(std::move(cfg)), signer_(std::move(signer)), ledger_(std::move(ledger)) {}

void SnapshotGuard::set_qemu_digest(uint32_t phase, const QemuDigest& d) {
    (phase == kPhaseSave ? qemu_save_ : phase == kPhaseFinal ? qemu_final_ : qemu_restore_) = d;
}

Result<GuestMemory*> SnapshotGuard::memory() {
    Result<GuestMemory> now = make_error(rc::kFail, "no guest memory configured (--vm-memory)");
    if (!cfg_.memory_path.empty()) {
        now = GuestMemory::open_file(cfg_.memory_path);
        // Fail closed: a file nobody checks is QEMU's could be a copy of the
        // saved RAM while QEMU runs on edited memory.
        if (now && peer_pid_ <= 0)
            return make_error(rc::kFail, "cannot check that " + cfg_.memory_path +
                                             " is QEMU's RAM: the control socket's peer is not known (use a unix "
                                             "control socket)");
        if (now)
            if (auto m = now->covers_shared_ram_of(peer_pid_); !m) return m.error();
    } else if (cfg_.memory_from_peer) {
        if (peer_pid_ <= 0) return make_error(rc::kFail, "the control socket's peer (QEMU) is not known");
        now = GuestMemory::open_process(peer_pid_);
    }
    if (!now) return now.error();
    // Keep the mapping we have while it is the same memory: its page tables
    // are filled already.
    if (!mapped_ || !mapped_->same_files(*now)) mapped_ = std::move(*now);
    return &*mapped_;
}

Result<SnapshotGuard::MemoryDigest> SnapshotGuard::digest_memory(DigestSource want, uint32_t phase) {
    MemoryDigest out;
    auto& qemu = phase == kPhaseSave ? qemu_save_ : phase == kPhaseFinal ? qemu_final_ : qemu_restore_;
    if (want == DigestSource::Qemu || (!cfg_.memory_from_peer && cfg_.memory_path.empty() && qemu)) {
        if (!qemu) return make_error(rc::kFail, "QEMU handed over no RAM digest (CMD_VTPM_RAM_DIGEST)");
        out.source = DigestSource::Qemu;
        out.page_count = qemu->page_count;
        out.pages.root = qemu->root;
        out.where = "QEMU's RAM digest";
        qemu.reset();  // one digest per save or restore
        return out;
    }
    auto mem = memory();
    if (!mem) return mem.error();
    const auto views = (*mem)->views();
    out.pages = hash_regions(views, cfg_.threads);
    (*mem)->mark_hashed();
    out.page_count = out.pages.leaves.size();
    out.where = (*mem)->describe();
    return out;
}

Result<Verdict> SnapshotGuard::not_checked(const std::string& why) {
    if (cfg_.required) {
        VTPM_LOG_ERROR("snapshot verification required but impossible: %s", why.c_str());
        return make_error(rc::kFail, "snapshot verification required but impossible: " + why);
    }
    VTPM_LOG_WARN("snapshot verification skipped: %s", why.c_str());
    return Verdict{};
}

Result<Verdict> SnapshotGuard::failed(const std::string& why) {
    if (cfg_.policy == Policy::Taint) {
        VTPM_LOG_ERROR("snapshot verification failed, vPCRs will be tainted (policy taint): %s", why.c_str());
        return Verdict{true};
    }
    VTPM_LOG_ERROR("snapshot verification failed, restore refused: %s", why.c_str());
    return make_error(rc::kFail, "snapshot verification failed: " + why);
}

Result<std::optional<Bytes>> SnapshotGuard::make_record(engine::Engine& e, ByteView permanent_plain,
                                                         ByteView volatile_plain) {
    using Out = std::optional<Bytes>;
    if (cfg_.policy == Policy::Skip) return Out{};
    auto skip = [&](const std::string& why) -> Result<Out> {
        if (cfg_.required) {
            VTPM_LOG_ERROR("no snapshot record, save refused: %s", why.c_str());
            return make_error(rc::kFail, "snapshot record required but impossible: " + why);
        }
        VTPM_LOG_WARN("no snapshot record for this save: %s", why.c_str());
        return Out{};
    };
    if (!cfg_.vm_uuid) return skip("the VM UUID is not known (--vm-uuid, or a state directory named by it)");
    if (!signer_ || !ledger_) return skip("no host key to sign with (--vtpm-host socket=...)");
    if (auto s = settle_before_record(e); !s) return s.error();
    const auto t0 = std::chrono::steady_clock::now();
    auto md = digest_memory(DigestSource::MappedMemory, kPhaseSave);
    if (!md) return skip(md.error().message);
    const double hash_ms = ms_since(t0);

    SnapshotRecord r;
    r.vm_uuid = *cfg_.vm_uuid;
    const std::string uuid = format_uuid(r.vm_uuid);
    auto last = ledger_->latest(uuid);
    if (!last) return skip(last.error().message);
    r.generation = *last ? (*last)->generation + 1 : 1;
    r.created = static_cast<uint64_t>(std::time(nullptr));
    r.source = md->source;
    r.page_count = md->page_count;
    r.root = md->pages.root;
    if (!md->pages.block_roots.empty()) {
        r.block_pages = kBlockPages;
        r.block_roots = md->pages.block_roots;
    }
    r.permanent_digest = sha256({permanent_plain});
    r.volatile_digest = sha256({volatile_plain});
    auto banks = read_all_pcrs(e);
    if (!banks) return skip(banks.error().message);
    r.banks = std::move(*banks);
    r.host_key_name = signer_->key_name();
    const Digest q = quote_qualifying_data(r);
    auto quote = quote_with_vaik(e, q, r.banks);
    if (!quote) return skip(quote.error().message);
    if (*quote) {
        r.vaik_public = std::move((*quote)->vaik_public);
        r.quote_attest = std::move((*quote)->attest);
        r.quote_signature = std::move((*quote)->signature);
    }
    auto sig = signer_->sign(r);
    if (!sig) return skip("signing the record with the " + signer_->describe() + " failed: " + sig.error().message);
    r.host_signature = std::move(*sig);
    // The host remembers the generation before the record leaves: an older
    // image is recognised even if this process dies right after.
    if (auto c = ledger_->commit(uuid, hoststate::LedgerEntry{r.generation, r.root}); !c)
        return skip(c.error().message);
    if (!md->pages.leaves.empty()) ledger_->keep_leaves(uuid, r.root, md->pages.leaves);
    VTPM_LOG_INFO(
        "snapshot record: VM %s generation %llu, %llu pages of %s, root %s%s (hashed in %.1f ms, total %.1f ms)",
        uuid.c_str(), static_cast<unsigned long long>(r.generation), static_cast<unsigned long long>(r.page_count),
        md->where.c_str(), to_hex(r.root).c_str(), r.quote_attest.empty() ? "" : ", quoted by the vAIK", hash_ms,
        ms_since(t0));
    return Out(encode_record(r));
}

std::string SnapshotGuard::first_differences(const SnapshotRecord& r, const PageDigests& now) {
    const std::string uuid = format_uuid(r.vm_uuid);
    // RAM that is not there yet (a post-copy migration) reads as zeros.
    const std::string not_there =
        "; guest RAM there is zero where the saved image had data (RAM not there yet: a post-copy migration?)";
    // Exact pages when this host kept the leaves of that save.
    if (auto kept = ledger_ ? ledger_->leaves_for(uuid, r.root) : std::nullopt;
        kept && kept->size() == now.leaves.size()) {
        const auto pages = merkle::differing_leaves(*kept, now.leaves, kListedPages);
        std::string where = "first differing pages: " + page_list(pages);
        const Digest zero = zero_page_leaf();
        if (!pages.empty() && now.leaves[pages.front()] == zero && (*kept)[pages.front()] != zero) where += not_there;
        return where;
    }
    if (!r.block_roots.empty() && r.block_roots.size() == now.block_roots.size()) {
        std::vector<uint64_t> pages;
        for (uint64_t b : merkle::differing_leaves(r.block_roots, now.block_roots, kListedPages))
            pages.push_back(b * r.block_pages);
        std::string where =
            "first differing blocks of " + std::to_string(r.block_pages) + " pages start at pages " + page_list(pages);
        if (!pages.empty() && mapped_ && mapped_->pages_are_holes(pages.front(), r.block_pages)) where += not_there;
        return where;
    }
    return "the Merkle roots differ";
}

Result<Verdict> SnapshotGuard::check_restore(std::optional<ByteView> record,
                                                             const Digest& permanent_digest, ByteView volatile_plain) {
    if (cfg_.policy == Policy::Skip) return Verdict{};
    const auto t0 = std::chrono::steady_clock::now();
    if (!cfg_.vm_uuid) return not_checked("the VM UUID is not known (--vm-uuid, or a state directory named by it)");
    if (!signer_ || !ledger_) return not_checked("no host key to check the record with (--vtpm-host socket=...)");
    if (!record) return record_missing("the volatile state carries no snapshot record");
    const std::string uuid = format_uuid(*cfg_.vm_uuid);
    auto last = ledger_->latest(uuid);
    if (!last) return failed(last.error().message);
    auto r = parse_record(*record);
    if (!r) return failed(r.error().message);
    const std::string theirs = format_uuid(r->vm_uuid);
    // The signature first: nothing else in a record is worth reading without it.
    if (auto v = signer_->verify(r->host_key_name, signed_message(*r), r->host_signature); !v)
        return failed("tampered or foreign record: " + v.error().message);
    if (r->vm_uuid != *cfg_.vm_uuid) return failed("the record belongs to VM " + theirs + ", not to this VM " + uuid);
    if (!*last) return failed("this host has signed no snapshot of VM " + uuid + " (its ledger is empty)");
    if (r->generation < (*last)->generation)
        return failed("replayed record: generation " + std::to_string(r->generation) +
                      " is older than the latest save (" + std::to_string((*last)->generation) + ")");
    if (r->generation > (*last)->generation || r->root != (*last)->root)
        return failed("the record (generation " + std::to_string(r->generation) +
                      ") is not the one this host's ledger holds (generation " + std::to_string((*last)->generation) +
                      "): the ledger was rolled back or replaced");
    // A save restores once: after it ran, restoring it again would roll back
    // the guest's NV counters and dictionary-attack lockout.
    if ((*last)->restored)
        return failed("generation " + std::to_string(r->generation) + " of VM " + uuid +
                      " was restored already and has run since: a save restores once (an operator's snapshot "
                      "revert: vtpm-host revert --vm " + uuid + " --generation " + std::to_string(r->generation) + ")");
    if (r->volatile_digest != sha256({volatile_plain}))
        return failed("the volatile state (vPCRs) is not the one the record was made with");
    if (r->permanent_digest != permanent_digest)
        return failed("the permanent state is not the one the record was made with");
    if (!r->quote_attest.empty())
        if (auto q = check_quote(*r); !q) return failed(q.error().message);

    // The record is this host's and current: guest RAM must be checked
    // against it. Without RAM to hash the restore is not verifiable: refused
    // (or tainted), never waved through.
    auto md = digest_memory(r->source, kPhaseRestore);
    if (!md) return failed("guest RAM cannot be checked against the record: " + md.error().message);
    if (md->page_count != r->page_count)
        return failed("guest RAM has " + std::to_string(md->page_count) + " pages (" + md->where + "), the record " +
                      std::to_string(r->page_count));
    if (md->pages.root != r->root)
        return failed("guest RAM (" + md->where + ") differs from the saved image: " +
                      (md->source == DigestSource::Qemu ? std::string("QEMU's RAM digest differs")
                                                        : first_differences(*r, md->pages)));
    VTPM_LOG_INFO("snapshot record verified: VM %s generation %llu, %llu pages of %s match root %s%s (%.1f ms)",
                  uuid.c_str(), static_cast<unsigned long long>(r->generation),
                  static_cast<unsigned long long>(r->page_count), md->where.c_str(), to_hex(r->root).c_str(),
                  r->quote_attest.empty() ? "" : ", vAIK quote checked", ms_since(t0));
    // Kept for the final verification: later sections of the incoming
    // stream may still change guest RAM before any vCPU runs.
    candidate_ = std::move(*r);
    return Verdict{};
}

Result<Verdict> SnapshotGuard::record_missing(const std::string& what) {
    if (!cfg_.vm_uuid) return not_checked("the VM UUID is not known (--vm-uuid, or a state directory named by it)");
    if (!signer_ || !ledger_) return not_checked("no host key to check the record with (--vtpm-host socket=...)");
    const std::string uuid = format_uuid(*cfg_.vm_uuid);
    // Fail closed: once this host has signed a snapshot of the VM, a state
    // without a record is a stripped or foreign one, never a swtpm save.
    auto last = ledger_->latest(uuid);
    if (!last) return failed(last.error().message);
    if (*last)
        return failed(what + ", but this host signed generation " + std::to_string((*last)->generation) + " of VM " +
                      uuid + ": the record was stripped or the state is not the one saved");
    return not_checked(what + " (saved by swtpm or without guest memory)");
}

Result<std::optional<Bytes>> SnapshotGuard::make_record_now(engine::Engine& e) {
    if (cfg_.policy == Policy::Skip) return std::optional<Bytes>{};  // no records: nothing to serialise
    if (refused_) return make_error(rc::kFail, "no snapshot record: the restored state failed its final verification");
    auto vol = e.get_state(engine::BlobType::Volatile);
    if (!vol) return vol.error();
    auto perm = e.get_state(engine::BlobType::Permanent);
    if (!perm) return perm.error();
    return make_record(e, perm->data, vol->data);
}

Result<void> SnapshotGuard::on_export(engine::Engine& e, engine::BlobType type, ByteView plain, Bytes& blob) {
    if (type != engine::BlobType::Volatile || cfg_.policy == Policy::Skip) return {};
    // Never sign guest RAM that failed its final verification.
    if (refused_) return make_error(rc::kFail, "no snapshot record: the restored state failed its final verification");
    // The VM is paused while QEMU fetches its state: hash guest RAM now and
    // let the record travel in the volatile blob, beside swtpm's records.
    auto perm = e.get_state(engine::BlobType::Permanent);
    if (!perm) return perm.error();
    auto rec = make_record(e, perm->data, plain);
    if (!rec) return rec.error();
    if (*rec) store::append_blob_tlv(blob, kTagSnapshotRecord, **rec);
    return {};
}

Result<void> SnapshotGuard::on_import(engine::Engine& e, engine::BlobType type, ByteView blob, ByteView plain) {
    if (cfg_.policy == Policy::Skip) return {};
    restore_blobs_ = true;
    if (type == engine::BlobType::Permanent) {
        const Digest d = sha256({plain});
        // The volatile state was checked with the permanent state of its
        // record: another one set after it (an older copy: NV rolled back)
        // must not run under the checked vPCRs.
        if (candidate_ && d != candidate_->permanent_digest) {
            auto v = failed(
                "a permanent state set after the checked volatile state is not the one the record was made with");
            if (!v) return v.error();
            taint_at_init_ = true;
        }
        restored_permanent_ = d;
        return {};
    }
    if (type != engine::BlobType::Volatile) return {};
    // Checked before libtpms sees the vPCRs. A volatile blob alone is
    // checked against the permanent state the TPM would start from.
    auto verdict = blob.empty()
                       ? record_missing("the restore clears the volatile state (vPCRs)")
                       : check_restore(store::find_blob_tlv(blob, kTagSnapshotRecord), starting_permanent(e), plain);
    if (!verdict) return verdict.error();
    volatile_checked_ = true;
    // Checked at load: what the TPM writes from here on stays in memory
    // until the final verification (or the guest's first command).
    if (candidate_) e.hold_writes();
    // Sticky: a later blob of the same restore (without a record, say) never
    // clears a taint already decided.
    taint_at_init_ = taint_at_init_ || verdict->taint;
    return {};
}

Digest SnapshotGuard::starting_permanent(engine::Engine& e) const {
    if (restored_permanent_) return *restored_permanent_;
    auto p = e.load_state(std::string(store::kPermall));  // as libtpms will load it: held writes first
    return p ? sha256(p->view()) : Digest{};
}

Result<void> SnapshotGuard::before_init(engine::Engine& e) {
    if (cfg_.policy == Policy::Skip) return {};
    if (!restore_blobs_) {
        if (auto s = settle_awaiting(e, "a reset (CMD_INIT)", false); !s) return s;
        return check_volatile_on_disk(e);
    }
    Verdict v;
    if (candidate_) {
        // The last word on the permanent state: the one the TPM starts from
        // must be the record's.
        if (starting_permanent(e) != candidate_->permanent_digest) {
            auto f = failed("the permanent state the TPM would start from is not the one the record was made with");
            if (!f) return f.error();
            v = *f;
        }
    } else if (!volatile_checked_) {
        // Permanent state alone: the vPCRs would come from it (a
        // TPM2_Shutdown(SU_STATE) recorded in it) or be reset, its NV from
        // whatever copy was set. A restore all the same.
        auto f = record_missing("the restore sets no volatile state (vPCRs)");
        if (!f) return f.error();
        v = *f;
    }
    taint_at_init_ = taint_at_init_ || v.taint;
    return {};
}

Result<void> SnapshotGuard::after_init(engine::Engine& e) {
    // The TPM now runs on the restore checked at load (or on no restore):
    // that one awaits its final verification.
    awaiting_ = std::exchange(candidate_, std::nullopt);
    awaiting_verified_ = gate_logged_ = false;
    if (awaiting_) refused_ = false;  // a new restore, verified at load
    else if (auto w = e.release_writes(); !w) return w;
    if (!std::exchange(taint_at_init_, false)) return {};
    // Policy taint: the guest must never get these vPCRs untainted.
    if (auto t = taint(e); !t) return make_error(rc::kFail, "tainting the vPCRs failed: " + t.error().message);
    return {};
}

void SnapshotGuard::before_power_off(engine::Engine& e) {
    (void)settle_awaiting(e, "a power-off (CMD_STOP, CMD_SHUTDOWN or the end of the process)", true);
}

Result<void> SnapshotGuard::settle_awaiting(engine::Engine& e, const std::string& event, bool power_off) {
    if (!awaiting_) return {};
    if (awaiting_verified_) {  // consumed at its final verification
        awaiting_.reset();
        return {};
    }
    std::string why;
    if (cfg_.verify_before_run) {
        why = event + " came before the final verification (verify=before-run): the restored state is dropped";
    } else if (auto c = consume(*awaiting_); !c) {
        why = c.error().message;
        if (power_off) {
            // The guest may have run on it (verify=load): its state is kept
            // rather than lost (a migration's destination has no other).
            VTPM_LOG_ERROR("snapshot restore not recorded as used at %s: %s; its state is kept", event.c_str(),
                           why.c_str());
            awaiting_.reset();
            return make_error(rc::kFail, why);
        }
    } else {
        awaiting_.reset();
        return {};
    }
    // Refused as a failed final verification is: nothing of the restore
    // reaches the disk, and the TPM answers no command until a restore
    // passes.
    VTPM_LOG_ERROR("snapshot restore refused at %s: %s", event.c_str(), why.c_str());
    refuse_restore(e);
    return make_error(rc::kFail, "snapshot restore refused: " + why);
}

std::string SnapshotGuard::awaiting_restore() const {
    return "the restore of VM " + format_uuid(awaiting_->vm_uuid) + " generation " +
           std::to_string(awaiting_->generation);
}

Result<void> SnapshotGuard::settle_before_record(engine::Engine& e) {
    if (!awaiting_ || awaiting_verified_) return {};
    const std::string what = awaiting_restore();
    if (cfg_.verify_before_run) {
        // Later sections of the incoming stream may have changed guest RAM
        // after the check at load: a record made now would launder them into
        // a save that verifies.
        VTPM_LOG_ERROR("no snapshot record, save refused: %s awaits its final verification (verify=before-run)",
                       what.c_str());
        return make_error(rc::kFail, "no snapshot record: " + what +
                                         " awaits its final verification (verify=before-run); a record now would "
                                         "sign guest RAM nobody checked: verify it first (vtpm-host restore, "
                                         "CMD_VTPM_VERIFY_RAM)");
    }
    // verify=load: saved before any TPM command, the restored state goes on
    // in the new save: it has run, as at the guest's first command.
    VTPM_LOG_WARN(
        "snapshot record verified at load, not before run: a save came after %s without a final "
        "verification",
        what.c_str());
    return use_awaiting(e, "a save");
}

Result<void> SnapshotGuard::use_awaiting(engine::Engine& e, const char* at) {
    if (auto c = consume(*awaiting_); !c) {
        // Restored twice at once (two QEMUs from one image): only one runs.
        VTPM_LOG_ERROR("snapshot restore refused at %s: %s", at, c.error().message.c_str());
        refuse_restore(e);
        return c;
    }
    awaiting_.reset();
    return e.release_writes();
}

void SnapshotGuard::refuse_restore(engine::Engine& e) {
    awaiting_.reset();
    e.discard_writes();
    e.forgo_auto_shutdown();
    refused_ = true;
    gate_logged_ = true;
}

Result<void> SnapshotGuard::check_volatile_on_disk(engine::Engine& e) {
    const std::string name(store::kVolatile);
    auto vol = e.load_state(name);  // as libtpms will load it
    if (!vol) {
        if (vol.code() == rc::kRetry) return {};  // none: the TPM starts from its permanent state
        VTPM_LOG_ERROR("CMD_INIT refused: the volatile state cannot be read to check it: %s",
                       vol.error().message.c_str());
        return make_error(rc::kFail, "the volatile state cannot be read to check it: " + vol.error().message);
    }
    auto v = record_missing(
        "the state holds a volatile state (tpm2-00.volatilestate: vPCRs stored by "
        "CMD_STORE_VOLATILE or left by a restore) that the TPM would resume from");
    if (!v) return v.error();
    taint_at_init_ = taint_at_init_ || v->taint;
    return {};
}

Result<void> SnapshotGuard::admit_store_volatile(engine::Engine&) {
    if (cfg_.policy == Policy::Skip) return {};
    // What a refused or not yet verified restore runs on never reaches the
    // disk, this way neither.
    if (refused_) return make_error(rc::kFail, "the restored state failed its final verification: not stored");
    if (awaiting_ && !awaiting_verified_)
        return make_error(rc::kFail, awaiting_restore() +
                                         " awaits its final verification: its volatile state is "
                                         "not stored");
    return {};
}

void SnapshotGuard::end_restore() {
    restored_permanent_.reset();
    candidate_.reset();
    taint_at_init_ = false;
    restore_blobs_ = volatile_checked_ = false;
}

Result<void> SnapshotGuard::taint(engine::Engine& e) {
    auto r = taint_pcrs(e);
    if (r) VTPM_LOG_ERROR("vPCRs 0-16 and 23 of every bank extended with the snapshot-failure event (policy taint)");
    return r;
}

}  // namespace vtpm::snapshot

namespace vtpm::snapshot {

Result<void> SnapshotGuard::admit_tpm_command(engine::Engine& e) {
    if (refused_) {
        if (!std::exchange(gate_logged_, true))
            VTPM_LOG_ERROR("TPM commands refused: the restored state failed its final verification");
        return make_error(rc::kFail, "the restored state failed its final verification");
    }
    if (!awaiting_) return {};
    if (awaiting_verified_) {
        awaiting_.reset();  // verified before run: the guest runs now
        return {};
    }
    if (cfg_.verify_before_run) {
        if (!std::exchange(gate_logged_, true))
            VTPM_LOG_ERROR("TPM commands refused until the final verification (verify=before-run): the restore "
                           "was verified at load, not before run");
        return make_error(rc::kFail, "the restore awaits its final verification (verify=before-run)");
    }
    // An honest guest changes RAM as soon as it runs: from here on a final
    // verification would mean nothing.
    VTPM_LOG_WARN("snapshot record verified at load, not before run: the TPM got its first command after the restore "
                  "(VM %s generation %llu) without a final verification",
                  format_uuid(awaiting_->vm_uuid).c_str(), static_cast<unsigned long long>(awaiting_->generation));
    if (auto u = use_awaiting(e, "the first TPM command"); !u) {
        if (!refused_) VTPM_LOG_ERROR("TPM command refused: %s", u.error().message.c_str());  // a held write failed
        return u;
    }
    return {};
}

Result<void> SnapshotGuard::consume(const SnapshotRecord& r) {
    auto c = ledger_->consume(format_uuid(r.vm_uuid), r.generation, r.root);
    if (!c) return make_error(rc::kFail, "the host ledger did not take the restore: " + c.error().message);
    VTPM_LOG_INFO("snapshot generation %llu of VM %s restored: the host ledger will not take it again",
                  static_cast<unsigned long long>(r.generation), format_uuid(r.vm_uuid).c_str());
    return {};
}

Result<void> SnapshotGuard::verify_before_run(engine::Engine& e) {
    if (refused_) return make_error(rc::kFail, "the restored state failed its final verification already");
    if (!awaiting_)
        return make_error(rc::kFail, candidate_ ? "the restore is not complete yet (no CMD_INIT since SET_STATEBLOB)"
                                                : "no restore checked at load awaits a final verification (none since "
                                                  "the TPM started, it was not verified at load, or the guest ran)");
    const SnapshotRecord& r = *awaiting_;
    const std::string uuid = format_uuid(r.vm_uuid);
    if (awaiting_verified_ && r.source == DigestSource::Qemu && !qemu_final_) {
        VTPM_LOG_INFO("snapshot record verified before run already (QEMU's final RAM digest): VM %s", uuid.c_str());
        return {};
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto md = digest_memory(r.source, kPhaseFinal);
    std::string why;
    if (!md) why = "guest RAM cannot be checked against the record: " + md.error().message;
    else if (md->page_count != r.page_count)
        why = "guest RAM has " + std::to_string(md->page_count) + " pages (" + md->where + "), the record " +
              std::to_string(r.page_count);
    else if (md->pages.root != r.root)
        why = "guest RAM (" + md->where + ") changed after the TPM state was loaded: " +
              (md->source == DigestSource::Qemu ? std::string("QEMU's final RAM digest differs")
                                                : first_differences(r, md->pages));
    if (why.empty() && !awaiting_verified_) {  // asked again before run: consumed the first time
        if (auto c = consume(r); !c) why = c.error().message;
    }
    if (why.empty()) {
        if (auto w = e.release_writes(); !w) return w;
        awaiting_verified_ = true;
        VTPM_LOG_INFO("snapshot record verified before run: VM %s generation %llu, %llu pages of %s match root %s "
                      "(%.1f ms)", uuid.c_str(), static_cast<unsigned long long>(r.generation),
                      static_cast<unsigned long long>(r.page_count), md->where.c_str(), to_hex(r.root).c_str(),
                      ms_since(t0));
        return {};
    }
    awaiting_.reset();
    if (cfg_.policy == Policy::Taint && e.running()) {
        VTPM_LOG_ERROR("snapshot record not verified before run, vPCRs tainted (policy taint): %s", why.c_str());
        if (auto t = taint(e); t) {
            (void)e.release_writes();  // the tainted state is the TPM's state now
            return make_error(rc::kFail, "snapshot verification before run failed, vPCRs tainted: " + why);
        }
        why += "; tainting the vPCRs failed";
    }
    // Refuse: every TPM command is answered TPM_FAILURE from now on, and no
    // automatic TPM2_Shutdown writes this restore's state to disk. The TPM
    // keeps running: QEMU waits for full-size answers to its control
    // commands, which a stopped TPM does not give.
    VTPM_LOG_ERROR("snapshot record not verified before run, TPM refused: %s", why.c_str());
    refuse_restore(e);
    gate_logged_ = false;  // the guest's next command logs the gate once
    return make_error(rc::kFail, "snapshot verification before run failed, TPM refused: " + why);
}

}  // namespace vtpm::snapshot
