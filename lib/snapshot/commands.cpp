#include "snapshot/commands.hpp"

#include <algorithm>

#include "util/log.hpp"

namespace vtpm::snapshot {

void attach(core::Dispatcher& d, SnapshotGuard& guard) {
    d.add_filter(guard);
    if (!d.config().vendor_commands) return;
    using core::Reply;
    d.add_command(ctrl::Cmd::VtpmRamDigest,
                  core::Command{ctrl::cap::kVtpmRamDigest,
                                [&guard](core::Dispatcher& self, const ctrl::Request& req,
                                         const core::TransportState&) {
                                    const auto& r = std::get<ctrl::VendorRamDigestReq>(req);
                                    QemuDigest qd;
                                    qd.page_count = r.page_count;
                                    std::copy(r.root.begin(), r.root.end(), qd.root.begin());
                                    guard.set_qemu_digest(r.phase, qd);
                                    VTPM_LOG_INFO("CMD_VTPM_RAM_DIGEST: QEMU's digest of %llu pages for the %s",
                                                  static_cast<unsigned long long>(r.page_count),
                                                  r.phase == kPhaseSave      ? "next save"
                                                  : r.phase == kPhaseRestore ? "next restore"
                                                                             : "final verification (stream loaded)");
                                    if (r.phase != kPhaseFinal) return core::result_reply(rc::kSuccess);
                                    // The incoming stream is complete: QEMU starts the VM only on success.
                                    auto v = guard.verify_before_run(self.engine());
                                    return v ? core::result_reply(rc::kSuccess) : core::result_reply(v.code());
                                }});
    d.add_command(ctrl::Cmd::VtpmSnapshot,
                  core::Command{ctrl::cap::kVtpmSnapshot,
                                [&guard](core::Dispatcher& self, const ctrl::Request&, const core::TransportState&) {
                                    engine::Engine& e = self.engine();
                                    if (!e.tpm2()) return core::result_reply(rc::kBadOrdinal);
                                    auto rec = guard.make_record_now(e);
                                    if (!rec) return core::error_reply(rec.error(), "CMD_VTPM_SNAPSHOT");
                                    if (!*rec)
                                        return core::result_reply(rc::kFail);  // verification off or impossible: logged
                                    return Reply{ctrl::encode_vendor_tpm_response(rc::kSuccess, **rec)};
                                },
                                core::Needs::Running});
    d.add_command(ctrl::Cmd::VtpmVerifyRam,
                  core::Command{ctrl::cap::kVtpmVerifyRam,
                                [&guard](core::Dispatcher& self, const ctrl::Request&, const core::TransportState&) {
                                    return verify_reply(guard, self.engine());
                                }});
}

core::Reply verify_reply(SnapshotGuard& guard, engine::Engine& e) {
    auto v = guard.verify_before_run(e);  // logged by the guard
    if (v) return core::Reply{ctrl::encode_vendor_text_response(rc::kSuccess, "")};
    return core::Reply{ctrl::encode_vendor_text_response(v.code(), v.error().message)};
}

}  // namespace vtpm::snapshot
