// swtpm's control commands, one handler and one table row each. The rules
// of swtpm 0.7/0.8 live here: which commands need a running TPM (hashing,
// GET_TPMESTABLISHED, GET_STATEBLOB, ...) and which a stopped one
// (SET_STATEBLOB). A vendor command of another module is one more row,
// added with Dispatcher::add_command (snapshot/commands.cpp).
#include <utility>

#include "core/dispatcher.hpp"
#include "util/log.hpp"

namespace vtpm::core {
namespace {

using ctrl::Cmd;
using E = engine::Engine;
namespace cap = ctrl::cap;

Reply status(const Result<void>& r, const char* what) {
    return r ? result_reply(rc::kSuccess) : error_reply(r.error(), what);
}

Reply not_running() { return result_reply(rc::kBadOrdinal); }

// A handler that needs only the decoded request of type Req.
template <class Req>
Command row(uint64_t capability, Reply (*fn)(Dispatcher&, const Req&), Needs needs = Needs::Any) {
    return Command{capability,
                   [fn](Dispatcher& d, const ctrl::Request& req, const TransportState&) {
                       return fn(d, std::get<Req>(req));
                   },
                   needs};
}

// A command that needs a running TPM and answers a bare status.
template <class Req>
Command running_status(uint64_t capability, const char* what, Result<void> (*fn)(E&, const Req&)) {
    return Command{capability,
                   [what, fn](Dispatcher& d, const ctrl::Request& req, const TransportState&) {
                       return status(fn(d.engine(), std::get<Req>(req)), what);
                   },
                   Needs::Running};
}

Reply get_capability(Dispatcher& d, const ctrl::GetCapabilityReq&) {
    return Reply{ctrl::encode_capability(d.capabilities())};
}

Reply init(Dispatcher& d, const ctrl::InitReq& r) {
    auto res = d.init((r.flags & ctrl::kInitFlagDeleteVolatile) != 0);
    if (!res) return error_reply(res.error(), "CMD_INIT");
    VTPM_LOG_INFO("TPM initialised");
    return result_reply(rc::kSuccess);
}

Reply shutdown(Dispatcher& d, const ctrl::ShutdownReq&) {
    d.stop();
    return Reply{ctrl::encode_result(rc::kSuccess), Action::Shutdown};
}

Reply get_tpm_established(Dispatcher& d, const ctrl::GetTpmEstablishedReq&) {
    auto b = d.engine().tpm_established();
    if (!b) return error_reply(b.error(), "CMD_GET_TPMESTABLISHED");
    return Reply{ctrl::encode_tpm_established(rc::kSuccess, *b)};
}

Reply set_locality(Dispatcher& d, const ctrl::SetLocalityReq& r) {
    return status(d.engine().set_locality(r.locality), "CMD_SET_LOCALITY");
}

Result<void> hash_start(E& e, const ctrl::HashStartReq&) { return e.hash_start(); }
Result<void> hash_data(E& e, const ctrl::HashDataReq& r) { return e.hash_data(r.data); }
Result<void> hash_end(E& e, const ctrl::HashEndReq&) { return e.hash_end(); }
Result<void> cancel(E& e, const ctrl::CancelTpmCmdReq&) { return e.cancel(); }
Result<void> reset_established(E& e, const ctrl::ResetTpmEstablishedReq& r) {
    return e.reset_tpm_established(r.locality);
}

Reply get_state_blob(Dispatcher& d, const ctrl::GetStateBlobReq& r) { return d.get_state_blob(r); }

Reply set_state_blob(Dispatcher& d, const ctrl::SetStateBlobReq& req) {
    const auto type = engine::blob_type(req.type);
    if (!type) {
        if (may_log_refusal()) VTPM_LOG_ERROR("CMD_SET_STATEBLOB: unknown blob type %u", req.type);
        return result_reply(rc::kBadParameter);
    }
    auto r = d.import_blob(*type, req.state_flags, req.data);
    if (!r) return error_reply(r.error(), "CMD_SET_STATEBLOB");
    VTPM_LOG_INFO("CMD_SET_STATEBLOB: accepted blob type %u (%zu bytes)", req.type, req.data.size());
    return result_reply(rc::kSuccess);
}

Reply store_volatile(Dispatcher& d, const ctrl::StoreVolatileReq&) {
    return status(d.store_volatile(), "CMD_STORE_VOLATILE");
}

Reply stop(Dispatcher& d, const ctrl::StopReq&) {
    d.stop();
    return result_reply(rc::kSuccess);
}

Reply get_config(Dispatcher& d, const ctrl::GetConfigReq&) {
    uint32_t flags = 0;
    if (d.engine().store().state_key()) flags |= ctrl::kConfigFlagFileKey;
    if (d.config().migration_key) flags |= ctrl::kConfigFlagMigrationKey;
    return Reply{ctrl::encode_config(rc::kSuccess, flags)};
}

Reply set_data_fd(Dispatcher&, const ctrl::Request&, const TransportState& ts) {
    if (ts.data_channel_busy) return result_reply(rc::kIoError);
    if (ts.received_fd < 0) return result_reply(rc::kBadParameter);
    return Reply{ctrl::encode_result(rc::kSuccess), Action::AdoptDataFd};
}

Reply set_buffer_size(Dispatcher& d, const ctrl::SetBufferSizeReq& r) {
    auto b = d.engine().buffer_size(r.buffersize);
    if (!b) return error_reply(b.error(), "CMD_SET_BUFFERSIZE");
    return Reply{ctrl::encode_buffersize(rc::kSuccess, b->size, b->min, b->max)};
}

Reply get_info(Dispatcher& d, const ctrl::GetInfoReq& req) {
    auto info = d.engine().info(static_cast<uint32_t>(req.flags));
    if (!info) return error_reply(info.error(), "CMD_GET_INFO");
    if (req.offset >= info->size()) return result_reply(rc::kBadParameter);
    return Reply{ctrl::encode_info(*info, req.offset)};
}

Reply lock_storage(Dispatcher& d, const ctrl::LockStorageReq& r) {
    auto res = d.relock(r.retries);
    return res ? result_reply(rc::kSuccess) : error_reply(Error{rc::kFail, res.error().message}, "CMD_LOCK_STORAGE");
}

Reply vendor_tpm_command(Dispatcher& d, const ctrl::VendorTpmCommandReq& r) {
    E& e = d.engine();
    if (!e.tpm2()) return not_running();
    if (d.lock_released()) return result_reply(rc::kFail);  // the state belongs to the migration target now
    if (!d.tpm_commands_admitted()) return result_reply(rc::kFail);  // e.g. a restore not verified before run
    // One command between the guest's: logged by code only, never by content.
    VTPM_LOG_INFO("CMD_VTPM_TPM_COMMAND: TPM command %s from the host", hex32(load_be32(r.command.data() + 6)).c_str());
    return Reply{ctrl::encode_vendor_tpm_response(rc::kSuccess, e.host_command(r.command))};
}

}  // namespace

void add_swtpm_commands(Dispatcher& d) {
    d.add_command(Cmd::GetCapability, row<ctrl::GetCapabilityReq>(0, get_capability));
    d.add_command(Cmd::Init, row<ctrl::InitReq>(cap::kInit, init));
    d.add_command(Cmd::Shutdown, row<ctrl::ShutdownReq>(cap::kShutdown, shutdown));
    d.add_command(Cmd::GetTpmEstablished,
                  row<ctrl::GetTpmEstablishedReq>(cap::kGetTpmEstablished, get_tpm_established, Needs::Running));
    d.add_command(Cmd::SetLocality, row<ctrl::SetLocalityReq>(cap::kSetLocality, set_locality));
    d.add_command(Cmd::HashStart, running_status<ctrl::HashStartReq>(cap::kHashing, "CMD_HASH_START", hash_start));
    d.add_command(Cmd::HashData, running_status<ctrl::HashDataReq>(cap::kHashing, "CMD_HASH_DATA", hash_data));
    d.add_command(Cmd::HashEnd, running_status<ctrl::HashEndReq>(cap::kHashing, "CMD_HASH_END", hash_end));
    d.add_command(Cmd::CancelTpmCmd,
                  running_status<ctrl::CancelTpmCmdReq>(cap::kCancelTpmCmd, "CMD_CANCEL_TPM_CMD", cancel));
    d.add_command(Cmd::StoreVolatile, row<ctrl::StoreVolatileReq>(cap::kStoreVolatile, store_volatile, Needs::Running));
    d.add_command(Cmd::ResetTpmEstablished,
                  running_status<ctrl::ResetTpmEstablishedReq>(cap::kResetTpmEstablished, "CMD_RESET_TPMESTABLISHED",
                                                               reset_established));
    d.add_command(Cmd::GetStateBlob, row<ctrl::GetStateBlobReq>(cap::kGetStateBlob, get_state_blob, Needs::Running));
    d.add_command(Cmd::SetStateBlob, row<ctrl::SetStateBlobReq>(cap::kSetStateBlob, set_state_blob, Needs::Stopped));
    d.add_command(Cmd::Stop, row<ctrl::StopReq>(cap::kStop, stop));
    d.add_command(Cmd::GetConfig, row<ctrl::GetConfigReq>(cap::kGetConfig, get_config));
    d.add_command(Cmd::SetDataFd, Command{cap::kSetDataFd, set_data_fd});
    d.add_command(Cmd::SetBufferSize, row<ctrl::SetBufferSizeReq>(cap::kSetBufferSize, set_buffer_size));
    d.add_command(Cmd::GetInfo, row<ctrl::GetInfoReq>(cap::kGetInfo, get_info));
    if (d.config().lock_storage)
        d.add_command(Cmd::LockStorage, row<ctrl::LockStorageReq>(cap::kLockStorage, lock_storage));
    if (d.config().vendor_commands)
        d.add_command(Cmd::VtpmTpmCommand,
                      row<ctrl::VendorTpmCommandReq>(cap::kVtpmTpmCommand, vendor_tpm_command, Needs::Running));
}

}  // namespace vtpm::core
