#include <catch2/catch.hpp>

#include "common/capabilities.hpp"
#include "bridge/options.hpp"

using namespace vtpm::bridge;

namespace {
vtpm::Result<BridgeOptions> parse(std::vector<std::string> a, std::string tpm_path = "", std::string port = "") {
    return parse_options(a, tpm_path, port);
}
}  // namespace

TEST_CASE("options: libvirt 9.0's command line") {
    auto r = parse({"--ctrl", "type=unixio,path=/run/x-swtpm.sock,mode=0600", "--tpmstate",
                    "dir=/var/lib/libvirt/swtpm/u/tpm2,mode=0600", "--log", "file=/var/log/x.log", "--terminate",
                    "--tpm2", "--key", "pwdfd=5,mode=aes-256-cbc", "--migration-key", "pwdfd=6,mode=aes-256-cbc",
                    "--migration", "release-lock-outgoing,incoming"});
    REQUIRE(r.ok());
    CHECK(r->ctrl.type == ChannelOpts::Type::Unix);
    CHECK(r->ctrl.path == "/run/x-swtpm.sock");
    CHECK(r->ctrl.mode == 0600);
    CHECK(r->state_uri == "dir:///var/lib/libvirt/swtpm/u/tpm2");
    CHECK(r->state_mode == 0600);
    CHECK(r->log->file == "/var/log/x.log");
    CHECK_FALSE(r->log->level.has_value());
    CHECK(r->terminate);
    CHECK(r->tpm2);
    CHECK(r->key == "pwdfd=5,mode=aes-256-cbc");
    CHECK(r->migration_key == "pwdfd=6,mode=aes-256-cbc");
    CHECK(r->incoming_migration);
    CHECK(r->release_lock_outgoing);
    CHECK(r->need_init);
}

TEST_CASE("options: swtpm_setup's command line") {
    auto r = parse({"--flags", "not-need-init,startup-clear", "--tpmstate", "backend-uri=dir:///tmp/st", "--pid",
                    "file=/tmp/.swtpm_setup.pidfile.abc", "--tpm2", "--server", "type=tcp,fd=7", "--ctrl",
                    "type=unixio,clientfd=8"});
    REQUIRE(r.ok());
    CHECK_FALSE(r->need_init);
    CHECK(r->startup_type == 0);
    CHECK(r->state_uri == "dir:///tmp/st");
    CHECK(r->pid_file == "/tmp/.swtpm_setup.pidfile.abc");
    CHECK(r->server.type == ChannelOpts::Type::Tcp);
    CHECK(r->server.fd == 7);
    CHECK(r->ctrl.clientfd == 8);
}

TEST_CASE("options: tpm2-tools style TCP server and abbreviations") {
    auto r = parse({"--tpm2", "--tpmst=dir=/tmp/a", "--serv", "type=tcp,port=2321", "--ctrl", "type=tcp,port=2322",
                    "--flags", "startup-state,disable-auto-shutdown"});
    REQUIRE(r.ok());
    CHECK(r->server.port == 2321u);
    CHECK(r->server.bindaddr == "127.0.0.1");
    CHECK(r->ctrl.port == 2322u);
    CHECK(r->startup_type == 1);
    CHECK_FALSE(r->need_init);
    CHECK(r->disable_auto_shutdown);
}

TEST_CASE("options: -p implies a disconnecting TCP server; TPM_PATH and TPM_PORT") {
    auto r = parse({"-p", "4000"}, "/state");
    REQUIRE(r.ok());
    CHECK(r->server.port == 4000u);
    CHECK(r->server.disconnect);
    CHECK(r->state_uri == "dir:///state");
    auto p = parse({"--server", "type=tcp"}, "", "5555");
    REQUIRE(p.ok());
    CHECK(p->server.port == 5555u);
    CHECK_FALSE(parse({"--server", "type=tcp"}).ok());
}

TEST_CASE("options: the last occurrence of an option wins") {
    auto r = parse({"--tpmstate", "dir=/a", "--tpmstate", "dir=/b"});
    REQUIRE(r.ok());
    CHECK(r->state_uri == "dir:///b");
}

TEST_CASE("options: errors name the option") {
    auto unknown = parse({"--bogus"});
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error().message.find("--bogus") != std::string::npos);
    auto sub = parse({"--ctrl", "type=unixio,path=/x,colour=red"});
    REQUIRE_FALSE(sub.ok());
    CHECK(sub.error().message.find("--ctrl") != std::string::npos);
    CHECK(sub.error().message.find("colour=red") != std::string::npos);
    auto unsupported = parse({"--chroot", "/x"});
    REQUIRE_FALSE(unsupported.ok());
    CHECK(unsupported.error().message.find("--chroot") != std::string::npos);
    auto seccomp = parse({"--seccomp", "action=fry"});
    REQUIRE_FALSE(seccomp.ok());
    CHECK(seccomp.error().message.find("seccomp") != std::string::npos);
    CHECK(parse({"--seccomp", "action=none"})->seccomp_action == "none");
    CHECK(parse({})->seccomp_action == "kill");  // swtpm's default
    CHECK_FALSE(parse({"stray"}).ok());
    CHECK_FALSE(parse({"--ctrl", "path=/x"}).ok());  // type= is mandatory
    CHECK_FALSE(parse({"--fd", "1"}).ok());          // standard streams are refused
    CHECK_FALSE(parse({"--tpmstate", "mode=0600"}).ok());
    CHECK_FALSE(parse({"--tpmstate", "dir=/x,mode=999"}).ok());
    CHECK_FALSE(parse({"--tpm"}).ok());  // ambiguous prefix of tpm2/tpmstate
}

TEST_CASE("capabilities: swtpm's JSON shape with the features libvirt checks") {
    std::string j = capabilities_json(true);
    CHECK(j.rfind("{ \"type\": \"swtpm\", \"features\": [ \"tpm-1.2\", \"tpm-2.0\", ", 0) == 0);
    CHECK(j.find("\"cmdarg-pwd-fd\"") != std::string::npos);
    CHECK(j.find("\"cmdarg-migration\"") != std::string::npos);
    CHECK(j.find("\"rsa-keysize-2048\"") != std::string::npos);
    CHECK(j.find("\"cmdarg-seccomp\"") != std::string::npos);
    CHECK(j.find(" ], \"version\": \"") != std::string::npos);
    CHECK(capabilities_json(false).find("rsa-keysize") == std::string::npos);
}

#include "bridge/snapshot_settings.hpp"

TEST_CASE("snapshot settings: options, config file, UUID from libvirt's state path") {
    using vtpm::snapshot::Policy;
    CHECK(uuid_from_state_path("dir:///var/lib/libvirt/swtpm/3F0D9A4E-5B6C-4D7E-8F90-A1B2C3D4E5F6/tpm2") ==
          "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6");
    CHECK_FALSE(uuid_from_state_path("dir:///var/lib/swtpm/vm1"));

    auto o = parse({"--tpm2", "--tpmstate", "dir=/var/lib/libvirt/swtpm/3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6/tpm2",
                    "--ctrl", "type=unixio,path=/run/x.sock"});
    REQUIRE(o);
    auto none = resolve_snapshot_settings(*o, "");
    REQUIRE(none);
    CHECK_FALSE(none->enabled);  // exactly swtpm
    REQUIRE(none->guard.vm_uuid);

    const std::string conf =
        "# libvirt-started bridges\n"
        "vm_memory = /dev/shm/{uuid}.ram\n"
        "policy = taint\n"
        "required = yes\n"
        "host_socket = /run/libvtpm/hostd.sock\n"
        "vendor_ctrl = yes\n"
        "log_level = 3\n";
    auto s = resolve_snapshot_settings(*o, conf);
    REQUIRE(s);
    CHECK(s->enabled);
    CHECK(s->guard.memory_path == "/dev/shm/3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6.ram");
    CHECK(s->guard.policy == Policy::Taint);
    CHECK(s->guard.required);
    CHECK(s->host_socket == "/run/libvtpm/hostd.sock");
    CHECK(s->vendor_ctrl);
    CHECK(s->log_level == 3u);

    // The command line over the file.
    auto o2 = parse({"--tpm2", "--tpmstate", "dir=/s", "--ctrl", "type=unixio,path=/run/x.sock", "--vm-memory",
                     "peer,policy=refuse", "--vm-uuid", "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a", "--vtpm-host",
                     "socket=/tmp/h.sock"});
    REQUIRE(o2);
    auto s2 = resolve_snapshot_settings(*o2, conf);
    REQUIRE(s2);
    CHECK(s2->guard.memory_from_peer);
    CHECK(s2->guard.memory_path.empty());
    CHECK(s2->guard.policy == Policy::Refuse);
    CHECK(s2->host_socket == "/tmp/h.sock");
    CHECK(vtpm::format_uuid(*s2->guard.vm_uuid) == "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a");

    // Errors name what is wrong.
    auto err = [&](std::vector<std::string> extra, std::string conf_text = "") {
        std::vector<std::string> a{"--tpm2", "--tpmstate", "dir=/s", "--ctrl", "type=unixio,path=/run/x.sock"};
        a.insert(a.end(), extra.begin(), extra.end());
        auto p = parse(a);
        REQUIRE(p);
        auto r = resolve_snapshot_settings(*p, conf_text);
        return r ? std::string() : r.error().message;
    };
    CHECK(err({"--vm-memory", "policy=maybe"}).find("unknown policy 'maybe'") != std::string::npos);
    CHECK(err({"--vm-memory", "size=3"}).find("--vm-memory") != std::string::npos);
    CHECK(err({"--vm-uuid", "nope"}).find("--vm-uuid") != std::string::npos);
    CHECK(err({"--vtpm-host", "path=/x"}).find("--vtpm-host") != std::string::npos);
    // The old form that had the bridge open the host TPM is refused, saying what to do.
    CHECK(err({"--vtpm-host", "dir=/h,tcti=device:/dev/tpmrm0"}).find("no longer opens the host TPM") !=
          std::string::npos);
    CHECK(err({"--vtpm-host", "dir=/h"}).find("run vtpm-hostd") != std::string::npos);
    // Fail closed at start: a verifying policy without what it needs.
    const std::string no_host = err({"--vm-memory", "path=/dev/shm/x,policy=refuse", "--vm-uuid", "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6"});
    CHECK(no_host.find("policy=refuse cannot be honoured: missing the host key") != std::string::npos);
    const std::string no_uuid = err({"--vm-memory", "peer,policy=taint", "--vtpm-host", "socket=/h.sock"});
    CHECK(no_uuid.find("policy=taint cannot be honoured: missing the VM UUID") != std::string::npos);
    const std::string no_mem = err({"--vtpm-host", "socket=/h.sock", "--vm-uuid", "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6"});
    CHECK(no_mem.find("missing guest memory") != std::string::npos);
    CHECK(err({"--vtpm-host", "socket=/h.sock", "--vm-uuid", "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6", "--vtpm-vendor-ctrl"})
              .empty());  // a patched QEMU's digest is the memory source
    CHECK(err({"--vm-memory", "path=/dev/shm/x,policy=skip"}).empty());  // skip asks for nothing
    // Asked for in so many words, verification without a memory source or
    // host key is refused, never a silent plain swtpm.
    const std::string asked = err({"--vm-memory", "policy=refuse,required"});
    CHECK(asked.find("policy=refuse cannot be honoured: missing the host key") != std::string::npos);
    CHECK(asked.find("guest memory") != std::string::npos);
    CHECK(err({}, "required = yes\n").find("cannot be honoured") != std::string::npos);
    CHECK(err({}, "verify = before-run\n").find("cannot be honoured") != std::string::npos);
    CHECK(err({}, "policy = taint\n").find("policy=taint cannot be honoured") != std::string::npos);
    CHECK(err({}, "required = no\nverify = load\nlog_level = 2\n").empty());  // nothing asked
    CHECK(err({"--vm-memory", "policy=skip,required"}).empty());
    // What makes every save go without a record stops the bridge at start.
    const std::string uuid = "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6";
    auto verdict = [&](std::vector<std::string> a, Iface iface = Iface::Socket) {
        auto p = parse_options(a, "", "", iface);
        REQUIRE(p);
        auto r = resolve_snapshot_settings(*p, "");
        return r ? std::string() : r.error().message;
    };
    const std::vector<std::string> snap{"--vm-memory",    "path=/dev/shm/x", "--vtpm-host",
                                        "socket=/h.sock", "--vm-uuid",       uuid};
    auto with = [&](std::vector<std::string> a) {
        a.insert(a.end(), snap.begin(), snap.end());
        return a;
    };
    CHECK(verdict(with({"--tpm2", "--tpmstate", "dir=/s", "--ctrl", "type=unixio,path=/run/x.sock"})).empty());
    CHECK(verdict(with({"--tpmstate", "dir=/s", "--ctrl", "type=unixio,path=/run/x.sock"}))
              .find("missing a TPM 2 (--tpm2)") != std::string::npos);
    CHECK(verdict(with({"--tpm2", "--tpmstate", "dir=/s", "--ctrl", "type=tcp,port=2322"}))
              .find("a control channel that names its peer") != std::string::npos);
    CHECK(verdict(with({"--tpm2", "--tpmstate", "dir=/s", "-n", "vtpm0"}), Iface::Cuse)
              .find("a control channel that names its peer") != std::string::npos);
    // A patched QEMU's digest needs no peer: TCP is fine there.
    CHECK(verdict({"--tpm2", "--tpmstate", "dir=/s", "--ctrl", "type=tcp,port=2322", "--vtpm-host", "socket=/h.sock",
                   "--vm-uuid", uuid, "--vtpm-vendor-ctrl"})
              .empty());
    CHECK(err({}, "colour = blue\n").find("bridge config:1: unknown key 'colour'") != std::string::npos);
    CHECK(err({}, "\npolicy\n").find("bridge config:2: expected 'key = value'") != std::string::npos);
    CHECK(err({}, "required = perhaps\n").find("neither yes nor no") != std::string::npos);
    CHECK(err({}, "log_level = loud\n").find("not a level") != std::string::npos);
}

TEST_CASE("snapshot settings: verify= and the admin socket, {uuid} in its path") {
    const std::string state = "dir=/var/lib/libvirt/swtpm/3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6/tpm2";
    auto o = parse({"--tpm2", "--tpmstate", state, "--ctrl", "type=unixio,path=/run/x.sock"});
    REQUIRE(o);
    auto d = resolve_snapshot_settings(*o, "vm_memory = peer\nhost_socket = /h\n");
    REQUIRE(d);
    CHECK_FALSE(d->guard.verify_before_run);  // default: verify=load, today's behaviour
    CHECK(d->admin_socket.empty());
    auto s = resolve_snapshot_settings(
        *o, "vm_memory = peer\nhost_socket = /h\nverify = before-run\nadmin_socket = /run/libvtpm/{uuid}.admin\n");
    REQUIRE(s);
    CHECK(s->guard.verify_before_run);
    CHECK(s->admin_socket == "/run/libvtpm/3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6.admin");

    // The command line over the file.
    auto o2 = parse({"--tpm2", "--tpmstate", state, "--ctrl", "type=unixio,path=/run/x.sock", "--vm-memory",
                     "peer,verify=load", "--vtpm-admin-socket", "/tmp/a-{uuid}"});
    REQUIRE(o2);
    auto s2 = resolve_snapshot_settings(*o2, "host_socket = /h\nverify = before-run\nadmin_socket = /run/x\n");
    REQUIRE(s2);
    CHECK_FALSE(s2->guard.verify_before_run);
    CHECK(s2->admin_socket == "/tmp/a-3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6");

    auto err = [&](std::vector<std::string> args, const std::string& conf) {
        auto p = parse(args);
        REQUIRE(p);
        auto r = resolve_snapshot_settings(*p, conf);
        return r ? std::string() : r.error().message;
    };
    const std::vector<std::string> base{"--tpm2", "--tpmstate", state, "--ctrl", "type=unixio,path=/run/x.sock"};
    CHECK(err(base, "verify = sometimes\n").find("neither load nor before-run") != std::string::npos);
    auto bad = base;
    bad.insert(bad.end(), {"--vm-memory", "peer,verify=later"});
    CHECK(err(bad, "").find("--vm-memory: 'later' is neither load nor before-run") != std::string::npos);
    // {uuid} without a VM UUID: refused, never a socket named "{uuid}" or "".
    CHECK(err({"--tpm2", "--tpmstate", "dir=/s", "--ctrl", "type=unixio,path=/run/x.sock"},
              "admin_socket = /run/libvtpm/{uuid}.admin\n")
              .find("names {uuid}, but the VM UUID is not known") != std::string::npos);
}

TEST_CASE("options: --log level= as swtpm 0.7.1 reads it") {
    auto all = parse({"--ctrl", "type=unixio,path=/tmp/c", "--log", "level=-1"});
    REQUIRE(all.ok());
    CHECK(all->log->level == 0xffffffffu);  // every level, as swtpm's unsigned level
    auto plus = parse({"--ctrl", "type=unixio,path=/tmp/c", "--log", "level=+20"});
    REQUIRE(plus.ok());
    CHECK(plus->log->level == 20u);
}
