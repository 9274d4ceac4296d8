// powercut-fs: an in-memory FUSE3 filesystem that models a power cut, for the
// durability tests (tests/integration/test_powercut.py).
//
//   powercut-fs MOUNTPOINT [-d]
//
// Runs in the foreground, single-threaded, until SIGTERM/SIGINT/SIGHUP or an
// unmount. Every inode has a current view (what processes see) and a durable
// view (what survives a power cut):
//   - a regular file's content and mode become durable on fsync/fdatasync of it;
//   - a directory's entries become durable on fsync of the directory (fsyncdir).
// The control file /.powercut (not listed by readdir) takes commands, one per
// line; a write returns once its commands are applied:
//   cut                 power cut: every file and directory reverts to its durable
//                       view, walking from the root's durable entries; an inode
//                       not reachable that way vanishes.
//   sync                everything current becomes durable (like sync(1) on a
//                       journalling filesystem); for test setup.
//   fail-fsync on|off   file fsync/fdatasync fail with EIO and make nothing durable.
//   fail-dirsync on|off fsyncdir fails with EIO and makes nothing durable.
//   reset-stats         zero the counters.
// Reading /.powercut returns "name value" lines: the counters (fsync, fdatasync,
// fsyncdir, failed syncs, writes, renames, ...) and the failure switches.
//
// POSIX and flock locks are left to the kernel's local emulation (no getlk/
// setlk/flock handlers). Every open file uses direct I/O and every entry and
// attribute has a zero timeout, so the kernel caches nothing across a cut.
//
// A watchdog child (forked before the mount, without the /dev/fuse descriptor)
// lazily unmounts MOUNTPOINT when this process dies, even by SIGKILL, so that a
// killed test leaves no dead mount behind.

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr fuse_ino_t kRoot = FUSE_ROOT_ID;
constexpr fuse_ino_t kControl = FUSE_ROOT_ID + 1;
constexpr std::string_view kControlName = ".powercut";

timespec now() {
    timespec t{};
    ::clock_gettime(CLOCK_REALTIME, &t);
    return t;
}

struct Inode {
    fuse_ino_t ino = 0;
    mode_t mode = 0;  // type and permission bits
    uid_t uid = 0;
    gid_t gid = 0;
    timespec atime{}, mtime{}, ctime{};

    std::vector<char> data;                        // regular file: current content
    std::map<std::string, fuse_ino_t> entries;     // directory: current entries
    std::vector<char> durable_data;                // what a cut reverts the content to
    mode_t durable_mode = 0;
    std::map<std::string, fuse_ino_t> durable_entries;

    unsigned links = 0;          // current directory entries naming this inode
    unsigned durable_links = 0;  // durable directory entries naming it (any directory)
    uint64_t lookups = 0;        // the kernel's references (lookup count)
    unsigned opens = 0;          // open file handles

    bool is_dir() const { return S_ISDIR(mode); }
};

struct Stats {
    uint64_t fsync = 0, fdatasync = 0, fsyncdir = 0;
    uint64_t fsync_failed = 0, fsyncdir_failed = 0;
    uint64_t writes = 0, creates = 0, renames = 0, unlinks = 0, truncates = 0, cuts = 0;
};

// Closes nothing and frees nothing by hand: inodes live in unique_ptrs owned
// by the table, handles are numbers that index maps.
class PowercutFs {
public:
    PowercutFs() {
        auto root = std::make_unique<Inode>();
        root->ino = kRoot;
        root->mode = S_IFDIR | 0755;
        root->durable_mode = root->mode;
        root->atime = root->mtime = root->ctime = now();
        root->links = 1;
        root->durable_links = 1;  // the root always exists
        inodes_.emplace(kRoot, std::move(root));
    }

    // ---------------------------------------------------------- operations
    // Each returns 0 or an errno value and fills its out-parameters.

    int lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param& e) {
        if (parent == kRoot && name == kControlName) {
            entry_of_control(e);
            return 0;
        }
        Inode* dir = find(parent);
        if (!dir) return ESTALE;
        if (!dir->is_dir()) return ENOTDIR;
        auto it = dir->entries.find(name);
        if (it == dir->entries.end()) return ENOENT;
        Inode* n = find(it->second);
        if (!n) return ENOENT;
        fill_entry(*n, e);
        return 0;
    }

    void forget(fuse_ino_t ino, uint64_t n) {
        Inode* i = find(ino);
        if (!i) return;
        i->lookups = n > i->lookups ? 0 : i->lookups - n;
        collect(ino);
    }

    int getattr(fuse_ino_t ino, struct stat& st) {
        if (ino == kControl) {
            attr_of_control(st);
            return 0;
        }
        Inode* i = find(ino);
        if (!i) return ESTALE;
        fill_attr(*i, st);
        return 0;
    }

    int setattr(fuse_ino_t ino, const struct stat& in, int to_set, struct stat& out) {
        if (ino == kControl) {  // `open(..., "w")` truncates it: accept and ignore
            attr_of_control(out);
            return 0;
        }
        Inode* i = find(ino);
        if (!i) return ESTALE;
        if (to_set & FUSE_SET_ATTR_SIZE) {
            if (i->is_dir()) return EISDIR;
            if (in.st_size < 0) return EINVAL;
            i->data.resize(static_cast<size_t>(in.st_size));
            i->mtime = now();
            ++stats_.truncates;
        }
        if (to_set & FUSE_SET_ATTR_MODE) i->mode = (i->mode & S_IFMT) | (in.st_mode & 07777);
        if (to_set & FUSE_SET_ATTR_UID) i->uid = in.st_uid;
        if (to_set & FUSE_SET_ATTR_GID) i->gid = in.st_gid;
        if (to_set & FUSE_SET_ATTR_ATIME_NOW) i->atime = now();
        else if (to_set & FUSE_SET_ATTR_ATIME) i->atime = in.st_atim;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW) i->mtime = now();
        else if (to_set & FUSE_SET_ATTR_MTIME) i->mtime = in.st_mtim;
        i->ctime = now();
        fill_attr(*i, out);
        return 0;
    }

    int make(fuse_ino_t parent, const std::string& name, mode_t mode, const fuse_ctx& ctx,
             fuse_entry_param& e, fuse_ino_t* made = nullptr) {
        Inode* dir = find(parent);
        if (!dir) return ESTALE;
        if (!dir->is_dir()) return ENOTDIR;
        if (parent == kRoot && name == kControlName) return EEXIST;
        if (dir->entries.count(name)) return EEXIST;
        if (name.size() > 255) return ENAMETOOLONG;
        if (!S_ISREG(mode) && !S_ISDIR(mode)) return EPERM;  // no devices, fifos, sockets
        auto n = std::make_unique<Inode>();
        n->ino = next_ino_++;
        n->mode = mode;
        n->durable_mode = mode;
        n->uid = ctx.uid;
        n->gid = ctx.gid;
        n->atime = n->mtime = n->ctime = now();
        Inode& ref = *n;
        inodes_.emplace(n->ino, std::move(n));
        link_into(*dir, name, ref);
        fill_entry(ref, e);
        ++stats_.creates;
        if (made) *made = ref.ino;
        return 0;
    }

    int link(fuse_ino_t ino, fuse_ino_t parent, const std::string& name, fuse_entry_param& e) {
        Inode* i = find(ino);
        Inode* dir = find(parent);
        if (!i || !dir) return ESTALE;
        if (i->is_dir()) return EPERM;
        if (!dir->is_dir()) return ENOTDIR;
        if (dir->entries.count(name) || (parent == kRoot && name == kControlName)) return EEXIST;
        link_into(*dir, name, *i);
        i->ctime = now();
        fill_entry(*i, e);
        return 0;
    }

    int unlink(fuse_ino_t parent, const std::string& name, bool want_dir) {
        Inode* dir = find(parent);
        if (!dir) return ESTALE;
        if (parent == kRoot && name == kControlName) return EPERM;
        auto it = dir->entries.find(name);
        if (it == dir->entries.end()) return ENOENT;
        Inode* victim = find(it->second);
        if (victim) {
            if (want_dir && !victim->is_dir()) return ENOTDIR;
            if (!want_dir && victim->is_dir()) return EISDIR;
            if (want_dir && !victim->entries.empty()) return ENOTEMPTY;
        }
        fuse_ino_t gone = it->second;
        dir->entries.erase(it);
        dir->mtime = dir->ctime = now();
        if (victim) {
            --victim->links;
            victim->ctime = now();
        }
        ++stats_.unlinks;
        collect(gone);
        return 0;
    }

    int rename(fuse_ino_t parent, const std::string& name, fuse_ino_t newparent, const std::string& newname,
               unsigned flags) {
        if (flags & ~static_cast<unsigned>(RENAME_NOREPLACE)) return EINVAL;  // no RENAME_EXCHANGE/WHITEOUT
        Inode* from = find(parent);
        Inode* to = find(newparent);
        if (!from || !to) return ESTALE;
        if (!to->is_dir()) return ENOTDIR;
        if ((parent == kRoot && name == kControlName) || (newparent == kRoot && newname == kControlName))
            return EPERM;
        auto it = from->entries.find(name);
        if (it == from->entries.end()) return ENOENT;
        Inode* moving = find(it->second);
        if (!moving) return ENOENT;
        auto old = to->entries.find(newname);
        if (old != to->entries.end()) {
            if (old->second == moving->ino) return 0;  // two names of one inode: nothing to do
            if (flags & RENAME_NOREPLACE) return EEXIST;
            Inode* target = find(old->second);
            if (target) {
                if (target->is_dir() && !moving->is_dir()) return EISDIR;
                if (!target->is_dir() && moving->is_dir()) return ENOTDIR;
                if (target->is_dir() && !target->entries.empty()) return ENOTEMPTY;
            }
        }
        if (moving->is_dir() && is_inside(newparent, moving->ino)) return EINVAL;
        fuse_ino_t replaced = 0;
        if (old != to->entries.end()) {
            replaced = old->second;
            to->entries.erase(old);
            if (Inode* t = find(replaced)) --t->links;
        }
        from->entries.erase(name);
        to->entries[newname] = moving->ino;
        from->mtime = from->ctime = to->mtime = to->ctime = moving->ctime = now();
        ++stats_.renames;
        if (replaced) collect(replaced);
        return 0;
    }

    int open(fuse_ino_t ino, int flags, uint64_t& fh) {
        if (ino == kControl) {
            fh = next_fh_++;
            control_reads_.emplace(fh, stats_text());
            return 0;
        }
        Inode* i = find(ino);
        if (!i) return ESTALE;
        if (i->is_dir()) return EISDIR;
        if (flags & O_TRUNC) {
            i->data.clear();
            i->mtime = i->ctime = now();
        }
        ++i->opens;
        fh = ino;
        return 0;
    }

    void release(fuse_ino_t ino, uint64_t fh) {
        if (ino == kControl) {
            control_reads_.erase(fh);
            return;
        }
        Inode* i = find(ino);
        if (!i) return;
        if (i->opens) --i->opens;
        collect(ino);
    }

    int read(fuse_ino_t ino, uint64_t fh, size_t size, off_t off, std::string_view& out) {
        if (off < 0) return EINVAL;
        auto uoff = static_cast<size_t>(off);
        if (ino == kControl) {
            auto it = control_reads_.find(fh);
            if (it == control_reads_.end()) return EBADF;
            std::string_view all = it->second;
            out = uoff >= all.size() ? std::string_view{} : all.substr(uoff, size);
            return 0;
        }
        Inode* i = find(ino);
        if (!i) return ESTALE;
        if (uoff >= i->data.size()) {
            out = {};
        } else {
            out = std::string_view(i->data.data() + uoff, std::min(size, i->data.size() - uoff));
        }
        i->atime = now();
        return 0;
    }

    int write(fuse_ino_t ino, int flags, const char* buf, size_t size, off_t off) {
        if (off < 0) return EINVAL;
        if (ino == kControl) return control(std::string(buf, size));
        Inode* i = find(ino);
        if (!i) return ESTALE;
        size_t at = (flags & O_APPEND) ? i->data.size() : static_cast<size_t>(off);
        if (at + size > (size_t{1} << 30)) return EFBIG;
        if (i->data.size() < at + size) i->data.resize(at + size);
        std::memcpy(i->data.data() + at, buf, size);
        i->mtime = i->ctime = now();
        ++stats_.writes;
        return 0;
    }

    int fallocate(fuse_ino_t ino, int mode, off_t off, off_t len) {
        if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE) return EOPNOTSUPP;
        Inode* i = find(ino);
        if (!i || ino == kControl) return EOPNOTSUPP;
        if (off < 0 || len <= 0) return EINVAL;
        auto end = static_cast<size_t>(off) + static_cast<size_t>(len);
        if (end > (size_t{1} << 30)) return EFBIG;
        if (mode == 0 && i->data.size() < end) i->data.resize(end);
        return 0;
    }

    int fsync(fuse_ino_t ino, bool datasync) {
        if (ino == kControl) return 0;
        Inode* i = find(ino);
        if (!i) return ESTALE;
        if (fail_fsync_) {
            ++stats_.fsync_failed;
            return EIO;
        }
        ++(datasync ? stats_.fdatasync : stats_.fsync);
        i->durable_data = i->data;
        i->durable_mode = i->mode;
        return 0;
    }

    int fsyncdir(fuse_ino_t ino) {
        Inode* d = find(ino);
        if (!d) return ESTALE;
        if (fail_dirsync_) {
            ++stats_.fsyncdir_failed;
            return EIO;
        }
        ++stats_.fsyncdir;
        make_entries_durable(*d);
        d->durable_mode = d->mode;
        return 0;
    }

    // A directory listing snapshot per handle: (name, ino, mode).
    struct DirEntry {
        std::string name;
        fuse_ino_t ino;
        mode_t mode;
    };

    int opendir(fuse_ino_t ino, uint64_t& fh) {
        Inode* d = find(ino);
        if (!d) return ESTALE;
        if (!d->is_dir()) return ENOTDIR;
        std::vector<DirEntry> list{{".", d->ino, d->mode}, {"..", kRoot, S_IFDIR}};
        for (const auto& [name, child] : d->entries) {
            if (Inode* c = find(child)) list.push_back({name, child, c->mode});
        }
        fh = next_fh_++;
        listings_.emplace(fh, std::move(list));
        return 0;
    }

    const std::vector<DirEntry>* listing(uint64_t fh) const {
        auto it = listings_.find(fh);
        return it == listings_.end() ? nullptr : &it->second;
    }

    void releasedir(uint64_t fh) { listings_.erase(fh); }

private:
    // ---------------------------------------------------------- the model

    Inode* find(fuse_ino_t ino) {
        auto it = inodes_.find(ino);
        return it == inodes_.end() ? nullptr : it->second.get();
    }

    void link_into(Inode& dir, const std::string& name, Inode& child) {
        dir.entries[name] = child.ino;
        ++child.links;
        dir.mtime = dir.ctime = now();
    }

    // Is `ino` the directory `ancestor` or inside it (current entries)?
    bool is_inside(fuse_ino_t ino, fuse_ino_t ancestor) {
        std::set<fuse_ino_t> seen;
        std::function<bool(fuse_ino_t)> walk = [&](fuse_ino_t at) {
            if (at == ino) return true;
            if (!seen.insert(at).second) return false;
            Inode* d = find(at);
            if (!d || !d->is_dir()) return false;
            for (const auto& [name, child] : d->entries) {
                if (walk(child)) return true;
            }
            return false;
        };
        return walk(ancestor);
    }

    void make_entries_durable(Inode& dir) {
        for (const auto& [name, child] : dir.durable_entries) {
            if (Inode* c = find(child); c && c->durable_links) --c->durable_links;
        }
        std::vector<fuse_ino_t> dropped;
        for (const auto& [name, child] : dir.durable_entries) dropped.push_back(child);
        dir.durable_entries = dir.entries;
        for (const auto& [name, child] : dir.durable_entries) {
            if (Inode* c = find(child)) ++c->durable_links;
        }
        for (fuse_ino_t ino : dropped) collect(ino);
    }

    // Free an inode nobody can reach any more: no current or durable entry
    // names it, the kernel holds no reference and no handle is open.
    void collect(fuse_ino_t ino) {
        std::vector<fuse_ino_t> work{ino};
        while (!work.empty()) {
            fuse_ino_t at = work.back();
            work.pop_back();
            if (at == kRoot || at == kControl) continue;
            Inode* i = find(at);
            if (!i || i->links || i->durable_links || i->lookups || i->opens) continue;
            for (const auto& [name, child] : i->entries) {
                if (Inode* c = find(child); c && c->links) {
                    --c->links;
                    work.push_back(child);
                }
            }
            for (const auto& [name, child] : i->durable_entries) {
                if (Inode* c = find(child); c && c->durable_links) {
                    --c->durable_links;
                    work.push_back(child);
                }
            }
            inodes_.erase(at);
        }
    }

    void cut() {
        ++stats_.cuts;
        // What survives: everything reachable from the root's durable entries.
        std::set<fuse_ino_t> reachable;
        std::vector<fuse_ino_t> work{kRoot};
        while (!work.empty()) {
            fuse_ino_t at = work.back();
            work.pop_back();
            if (!reachable.insert(at).second) continue;
            Inode* i = find(at);
            if (!i) continue;
            for (const auto& [name, child] : i->durable_entries) work.push_back(child);
        }
        for (auto& [ino, node] : inodes_) {
            node->links = 0;
            node->durable_links = 0;
            if (reachable.count(ino)) {
                node->data = node->durable_data;
                node->mode = node->durable_mode;
                node->entries = node->durable_entries;
            } else {  // never made durable: gone (kept only while the kernel refers to it)
                node->entries.clear();
                node->durable_entries.clear();
                node->data.clear();
                node->durable_data.clear();
            }
        }
        for (fuse_ino_t ino : reachable) {
            Inode* d = find(ino);
            if (!d) continue;
            for (const auto& [name, child] : d->entries) {
                if (Inode* c = find(child)) {
                    ++c->links;
                    ++c->durable_links;
                }
            }
        }
        Inode* root = find(kRoot);
        root->links = root->durable_links = 1;
        std::vector<fuse_ino_t> all;
        for (const auto& [ino, node] : inodes_) all.push_back(ino);
        for (fuse_ino_t ino : all) collect(ino);
    }

    void sync_all() {
        for (auto& [ino, node] : inodes_) {
            node->durable_data = node->data;
            node->durable_mode = node->mode;
        }
        std::vector<Inode*> dirs;
        for (auto& [ino, node] : inodes_) {
            if (node->is_dir()) dirs.push_back(node.get());
        }
        for (Inode* d : dirs) make_entries_durable(*d);
    }

    int control(const std::string& text) {
        std::istringstream lines(text);
        std::string line;
        while (std::getline(lines, line)) {
            std::istringstream words(line);
            std::string cmd, arg;
            words >> cmd >> arg;
            if (cmd.empty()) continue;
            if (cmd == "cut" && arg.empty()) {
                cut();
            } else if (cmd == "sync" && arg.empty()) {
                sync_all();
            } else if ((cmd == "fail-fsync" || cmd == "fail-dirsync") && (arg == "on" || arg == "off")) {
                (cmd == "fail-fsync" ? fail_fsync_ : fail_dirsync_) = arg == "on";
            } else if (cmd == "reset-stats" && arg.empty()) {
                stats_ = {};
            } else {
                std::fprintf(stderr, "powercut-fs: unknown command %s\n", line.c_str());
                return EINVAL;
            }
        }
        return 0;
    }

    std::string stats_text() const {
        std::ostringstream o;
        o << "fsync " << stats_.fsync << "\nfdatasync " << stats_.fdatasync << "\nfsyncdir " << stats_.fsyncdir
          << "\nfsync_failed " << stats_.fsync_failed << "\nfsyncdir_failed " << stats_.fsyncdir_failed
          << "\nwrites " << stats_.writes << "\ncreates " << stats_.creates << "\nrenames " << stats_.renames
          << "\nunlinks " << stats_.unlinks << "\ntruncates " << stats_.truncates << "\ncuts " << stats_.cuts
          << "\ninodes " << inodes_.size() << "\nfail_fsync " << (fail_fsync_ ? 1 : 0) << "\nfail_dirsync "
          << (fail_dirsync_ ? 1 : 0) << "\n";
        return o.str();
    }

    // ---------------------------------------------------------- replies

    void fill_attr(const Inode& i, struct stat& st) const {
        st = {};
        st.st_ino = i.ino;
        st.st_mode = i.mode;
        if (i.is_dir()) {
            nlink_t n = 2;
            for (const auto& [name, child] : i.entries) {
                auto it = inodes_.find(child);
                if (it != inodes_.end() && it->second->is_dir()) ++n;
            }
            st.st_nlink = n;
        } else {
            st.st_nlink = i.links;
        }
        st.st_uid = i.uid;
        st.st_gid = i.gid;
        st.st_size = i.is_dir() ? 4096 : static_cast<off_t>(i.data.size());
        st.st_blksize = 4096;
        st.st_blocks = (st.st_size + 511) / 512;
        st.st_atim = i.atime;
        st.st_mtim = i.mtime;
        st.st_ctim = i.ctime;
    }

    void fill_entry(Inode& i, fuse_entry_param& e) {
        e = {};
        e.ino = i.ino;
        e.generation = 1;
        e.attr_timeout = 0;
        e.entry_timeout = 0;
        fill_attr(i, e.attr);
        ++i.lookups;  // every entry reply adds one kernel reference
    }

    void attr_of_control(struct stat& st) const {
        st = {};
        st.st_ino = kControl;
        st.st_mode = S_IFREG | 0600;
        st.st_nlink = 1;
        st.st_size = 0;  // direct I/O: reads are not limited by the size
        st.st_blksize = 4096;
        st.st_atim = st.st_mtim = st.st_ctim = now();
    }

    void entry_of_control(fuse_entry_param& e) const {
        e = {};
        e.ino = kControl;
        e.generation = 1;
        attr_of_control(e.attr);
    }

    std::map<fuse_ino_t, std::unique_ptr<Inode>> inodes_;
    fuse_ino_t next_ino_ = kControl + 1;
    uint64_t next_fh_ = 1u << 31;  // file handles of regular files are their inode numbers
    std::map<uint64_t, std::string> control_reads_;
    std::map<uint64_t, std::vector<DirEntry>> listings_;
    bool fail_fsync_ = false;
    bool fail_dirsync_ = false;
    Stats stats_;
};

// ------------------------------------------------------------ FUSE glue

PowercutFs& fs(fuse_req_t req) { return *static_cast<PowercutFs*>(fuse_req_userdata(req)); }

void reply_entry_or_err(fuse_req_t req, int err, const fuse_entry_param& e) {
    if (err) fuse_reply_err(req, err);
    else fuse_reply_entry(req, &e);
}

void op_init(void*, fuse_conn_info* conn) {
    // Nothing cached in the kernel beyond what a request returns.
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_WRITEBACK_CACHE);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    fuse_entry_param e{};
    reply_entry_or_err(req, fs(req).lookup(parent, name, e), e);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
    fs(req).forget(ino, n);
    fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* list) {
    for (size_t k = 0; k < count; ++k) fs(req).forget(list[k].ino, list[k].nlookup);
    fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    struct stat st{};
    if (int err = fs(req).getattr(ino, st)) fuse_reply_err(req, err);
    else fuse_reply_attr(req, &st, 0);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
    struct stat st{};
    if (int err = fs(req).setattr(ino, *attr, to_set, st)) fuse_reply_err(req, err);
    else fuse_reply_attr(req, &st, 0);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
    fuse_entry_param e{};
    reply_entry_or_err(req, fs(req).make(parent, name, mode, *fuse_req_ctx(req), e), e);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    fuse_entry_param e{};
    reply_entry_or_err(req, fs(req).make(parent, name, S_IFDIR | (mode & 07777), *fuse_req_ctx(req), e), e);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    fuse_reply_err(req, fs(req).unlink(parent, name, false));
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    fuse_reply_err(req, fs(req).unlink(parent, name, true));
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned flags) {
    fuse_reply_err(req, fs(req).rename(parent, name, newparent, newname, flags));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
    fuse_entry_param e{};
    reply_entry_or_err(req, fs(req).link(ino, newparent, newname, e), e);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
    fuse_entry_param e{};
    fuse_ino_t made = 0;
    int err = fs(req).make(parent, name, S_IFREG | (mode & 07777), *fuse_req_ctx(req), e, &made);
    if (!err) err = fs(req).open(made, fi->flags & ~O_TRUNC, fi->fh);
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    fi->direct_io = 1;
    fi->keep_cache = 0;
    if (fuse_reply_create(req, &e, fi) != 0) fs(req).release(made, fi->fh);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    if (int err = fs(req).open(ino, fi->flags, fi->fh)) {
        fuse_reply_err(req, err);
        return;
    }
    fi->direct_io = 1;
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0) fs(req).release(ino, fi->fh);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    std::string_view out;
    if (int err = fs(req).read(ino, fi->fh, size, off, out)) fuse_reply_err(req, err);
    else fuse_reply_buf(req, out.data(), out.size());
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
    if (int err = fs(req).write(ino, fi->flags, buf, size, off)) fuse_reply_err(req, err);
    else fuse_reply_write(req, size);
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    fs(req).release(ino, fi->fh);
    fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
    fuse_reply_err(req, fs(req).fsync(ino, datasync != 0));
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    if (int err = fs(req).opendir(ino, fi->fh)) fuse_reply_err(req, err);
    else if (fuse_reply_open(req, fi) != 0) fs(req).releasedir(fi->fh);
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
    const auto* list = fs(req).listing(fi->fh);
    if (!list) {
        fuse_reply_err(req, EBADF);
        return;
    }
    std::vector<char> buf(size);
    size_t used = 0;
    for (size_t k = off < 0 ? 0 : static_cast<size_t>(off); k < list->size(); ++k) {
        const auto& d = (*list)[k];
        struct stat st{};
        st.st_ino = d.ino;
        st.st_mode = d.mode;
        size_t need = fuse_add_direntry(req, buf.data() + used, size - used, d.name.c_str(), &st,
                                        static_cast<off_t>(k + 1));
        if (need > size - used) break;
        used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    fs(req).releasedir(fi->fh);
    fuse_reply_err(req, 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) { fuse_reply_err(req, fs(req).fsyncdir(ino)); }

void op_statfs(fuse_req_t req, fuse_ino_t) {
    struct statvfs st{};
    st.f_bsize = 4096;
    st.f_frsize = 4096;
    st.f_blocks = st.f_bfree = st.f_bavail = 1u << 18;  // 1 GiB
    st.f_files = st.f_ffree = st.f_favail = 1u << 20;
    st.f_namemax = 255;
    fuse_reply_statfs(req, &st);
}

void op_access(fuse_req_t req, fuse_ino_t ino, int) {
    struct stat st{};
    fuse_reply_err(req, fs(req).getattr(ino, st));
}

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, fuse_file_info*) {
    fuse_reply_err(req, fs(req).fallocate(ino, mode, off, len));
}

fuse_lowlevel_ops make_ops() {
    fuse_lowlevel_ops ops{};
    ops.init = op_init;
    ops.lookup = op_lookup;
    ops.forget = op_forget;
    ops.forget_multi = op_forget_multi;
    ops.getattr = op_getattr;
    ops.setattr = op_setattr;
    ops.mknod = op_mknod;
    ops.mkdir = op_mkdir;
    ops.unlink = op_unlink;
    ops.rmdir = op_rmdir;
    ops.rename = op_rename;
    ops.link = op_link;
    ops.create = op_create;
    ops.open = op_open;
    ops.read = op_read;
    ops.write = op_write;
    ops.flush = op_flush;
    ops.release = op_release;
    ops.fsync = op_fsync;
    ops.opendir = op_opendir;
    ops.readdir = op_readdir;
    ops.releasedir = op_releasedir;
    ops.fsyncdir = op_fsyncdir;
    ops.statfs = op_statfs;
    ops.access = op_access;
    ops.fallocate = op_fallocate;
    return ops;
}

// ------------------------------------------------------------ process

// The watchdog: a child without the /dev/fuse descriptor that lazily unmounts
// the mount point once the parent is gone (its end of a pipe closes). It
// clears its command line so that a reaper matching the parent's arguments
// does not kill it first.
void start_watchdog(const std::string& mountpoint, int argc, char** argv) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(p[0]);
        ::close(p[1]);
        return;
    }
    if (pid > 0) {
        ::close(p[0]);
        // p[1] stays open, unused, for this process's lifetime.
        return;
    }
    ::close(p[1]);
    for (int k = 0; k < argc; ++k) std::memset(argv[k], 0, std::strlen(argv[k]));
    ::prctl(PR_SET_NAME, "powercut-watch", 0, 0, 0);
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGHUP, SIG_IGN);
    if (int null = ::open("/dev/null", O_RDWR); null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        if (null > 2) ::close(null);
    }
    char c;
    while (::read(p[0], &c, 1) != 0) {
        if (errno != EINTR) break;
    }
    // Gone: if the mount is still there, nobody serves it any more.
    ::umount2(mountpoint.c_str(), MNT_DETACH);
    ::_exit(0);
}

struct SessionDeleter {
    void operator()(fuse_session* s) const { fuse_session_destroy(s); }
};

struct ArgsGuard {
    fuse_args args;
    ~ArgsGuard() { fuse_opt_free_args(&args); }
};

int usage(const char* prog) {
    std::fprintf(stderr, "usage: %s MOUNTPOINT [-d]\n", prog);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string mountpoint;
    bool debug = false;
    for (int k = 1; k < argc; ++k) {
        std::string_view a = argv[k];
        if (a == "-d") debug = true;
        else if (a == "-h" || a == "--help") {
            usage(argv[0]);
            return 0;
        }
        else if (mountpoint.empty() && !a.empty() && a[0] != '-') mountpoint = a;
        else return usage(argv[0]);
    }
    if (mountpoint.empty()) return usage(argv[0]);

    std::vector<std::string> words = {argv[0], "-o", "default_permissions,fsname=powercut,subtype=powercut"};
    if (debug) words.push_back("-d");
    std::vector<char*> ptrs;
    for (auto& w : words) ptrs.push_back(w.data());
    // fuse_opt_* may reallocate argv: take a copy it owns, freed by ArgsGuard.
    ArgsGuard guard{FUSE_ARGS_INIT(0, nullptr)};
    for (char* p : ptrs) {
        if (fuse_opt_add_arg(&guard.args, p) != 0) return 1;
    }

    PowercutFs model;
    fuse_lowlevel_ops ops = make_ops();
    std::unique_ptr<fuse_session, SessionDeleter> se(fuse_session_new(&guard.args, &ops, sizeof ops, &model));
    if (!se) return 1;
    if (fuse_set_signal_handlers(se.get()) != 0) return 1;
    start_watchdog(mountpoint, argc, argv);
    if (fuse_session_mount(se.get(), mountpoint.c_str()) != 0) {
        fuse_remove_signal_handlers(se.get());
        return 1;
    }
    std::fprintf(stderr, "powercut-fs: mounted on %s\n", mountpoint.c_str());
    int rc = fuse_session_loop(se.get());
    fuse_session_unmount(se.get());
    fuse_remove_signal_handlers(se.get());
    return rc < 0 ? 1 : 0;
}
