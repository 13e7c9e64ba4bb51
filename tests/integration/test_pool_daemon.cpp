// Pool channels through the real shmbusd: `{name, kind: pool}` as a complete entry, shown by
// shmbusctl list and info (blocks held per endpoint), a block's handle sent through a queue
// to another process that reads the block read-only, the ACL deciding who may write, a
// process killed with SIGKILL at each step of a block's life (holding what it acquired,
// holding what it adopted, after handing a block on) with the daemon giving back what it
// held within 50 ms, and the examples/shared-state pool program. Every wait is on the event
// itself, with a generous deadline.
#include "client_options.hpp"
#include "daemon_process.hpp"
#include "process.hpp"
#include "shmbusctl_process.hpp"
#include "skip.hpp"

#include <shmbus/shmbus.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <grp.h>
#include <map>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace shmbus;
using namespace shmbus::test;
using namespace std::chrono_literals;

namespace {

// 'big' is all defaults; 'frames' is small enough to fill, with a queue for its handles.
const std::string kConfig = "channels:\n"
                            "  - {name: big, kind: pool}\n"
                            "  - {name: frames, kind: pool, slot_size: 16MiB, slot_count: 3}\n"
                            "  - {name: frame-handles, kind: queue, slot_size: 16}\n";

/// A Client of `d`; also in forked children (no reconnect thread).
Client connect_to(const DaemonProcess& d, const std::string& name = "test_pool_daemon") {
    auto c = Client::connect(client_options(d, name, true));
    REQUIRE(c);
    return std::move(*c);
}

/// The blocks each endpoint of `channel` holds, by "role index".
std::map<std::string, std::uint64_t> held_by_endpoint(Client& c, const std::string& channel) {
    auto detail = c.channel_info(channel);
    REQUIRE(detail);
    std::map<std::string, std::uint64_t> out;
    for (const auto& e : detail->endpoints) {
        out[std::string{to_string(e.role)} + " " + std::to_string(e.index)] = e.held;
    }
    return out;
}

ChannelStats stats_of(Client& c, const std::string& channel) {
    auto detail = c.channel_info(channel);
    REQUIRE(detail);
    return detail->summary.stats;
}

/// Writes `mark` into the first and the last 8 bytes of `b`.
void stamp(PoolBlock& b, std::uint64_t mark) {
    auto bytes = b.mutable_data();
    std::memcpy(bytes.data(), &mark, 8);
    std::memcpy(bytes.data() + bytes.size() - 8, &mark, 8);
}

/// The mark in the first 8 bytes, if the last 8 bytes hold the same; else 0.
std::uint64_t stamped(const PoolBlock& b) {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::memcpy(&first, b.data().data(), 8);
    std::memcpy(&last, b.data().data() + b.data().size() - 8, 8);
    return first == last ? first : 0;
}

} // namespace

TEST_CASE("shmbusctl list and info show a pool with its defaults and the blocks each endpoint "
          "holds") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client c = connect_to(d);
    auto writer = c.open_pool("big", Role::publisher);
    REQUIRE(writer);
    auto a = writer->acquire();
    auto b = writer->acquire();
    REQUIRE(a);
    REQUIRE(b);
    auto reader = c.open_pool("big", Role::subscriber);
    REQUIRE(reader);
    auto handle = writer->hand_on(std::move(*b));
    REQUIRE(handle);
    auto adopted = reader->adopt(*handle);
    REQUIRE(adopted);

    const Outcome list = ctl(at(d, {"list", "--json", "--interval", "0"}));
    REQUIRE(list.code == 0);
    nlohmann::json big;
    const nlohmann::json channels = list.document()["channels"];
    for (const auto& ch : channels) {
        if (ch["name"] == "big") {
            big = ch;
        }
    }
    REQUIRE(big.is_object());
    CHECK(big["kind"] == "pool");
    CHECK(big["slot_size"] == 1 << 20);
    CHECK(big["slot_count"] == 16);
    CHECK(big["max_publishers"] == 8);
    CHECK(big["max_subscribers"] == 16);
    CHECK(big["pool"]["in_use"] == 2);
    CHECK(big["pool"]["acquired"] == 2);

    const Outcome info = ctl(at(d, {"info", "big", "--json"}));
    REQUIRE(info.code == 0);
    const auto doc = info.document();
    std::map<std::string, std::uint64_t> blocks;
    for (const auto& e : doc["endpoints"]) {
        blocks[e["role"].get<std::string>() + " " + std::to_string(e["index"].get<int>())] =
            e["blocks"].get<std::uint64_t>();
    }
    CHECK(blocks["publisher 0"] == 1);
    CHECK(blocks["subscriber 0"] == 1);
    CHECK(held_by_endpoint(c, "big") == blocks);

    const Outcome text = ctl(at(d, {"info", "big"}));
    REQUIRE(text.code == 0);
    CHECK(text.out.find("16 × 1MiB") != std::string::npos);
    CHECK(text.out.find("In use") != std::string::npos);
    CHECK(text.out.find("BLOCKS") != std::string::npos); // the endpoints' column
    CHECK(text.out.find("writer") != std::string::npos);
}

TEST_CASE("a 16 MiB block's handle goes through a queue to another process, which reads it "
          "read-only") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client c = connect_to(d);
    auto camera = c.open_pool("frames", Role::publisher);
    REQUIRE(camera);
    auto out = c.open_publisher("frame-handles");
    REQUIRE(out);

    Pipe report = Pipe::make();
    Child viewer = Child::spawn([&] {
        auto client = Client::connect(client_options(d, "viewer", true));
        if (!client) {
            return 1;
        }
        auto pool = client->open_pool("frames", Role::subscriber);
        auto in = client->open_subscriber("frame-handles");
        if (!pool || !in) {
            return 2;
        }
        for (int i = 0; i < 5; ++i) {
            BlockHandle h{};
            auto got = in->receive_copy(std::as_writable_bytes(std::span{&h, 1}),
                                        std::chrono::seconds{60});
            if (!got || got->size != sizeof h) {
                return 3;
            }
            auto block = pool->adopt(h);
            if (!block) {
                return 4;
            }
            // Read-only: nothing to write through, and the mapping would refuse it.
            const std::uint64_t seen = block->mutable_data().empty() ? stamped(*block) : 0;
            if (!send_record(report.write_end.get(), seen)) {
                return 5;
            }
        }
        return 0;
    });
    for (std::uint64_t n = 1; n <= 5; ++n) {
        auto block = camera->acquire(60s);
        REQUIRE(block);
        CHECK(block->data().size() == 16u << 20);
        stamp(*block, 0xF00D0000 + n);
        auto h = camera->hand_on(std::move(*block));
        REQUIRE(h);
        REQUIRE(out->send(std::as_bytes(std::span{&*h, 1}), 60s));
        auto seen = receive_record<std::uint64_t>(report.read_end.get());
        REQUIRE(seen);
        CHECK(*seen == 0xF00D0000 + n);
    }
    auto st = viewer.wait();
    REQUIRE(st);
    INFO(st->describe());
    CHECK(st->exited_ok());
    // The viewer released each block as it went (and the daemon had nothing left to give
    // back when it exited).
    const ChannelStats s = stats_of(c, "frames");
    CHECK(s.depth == 0);
    CHECK(s.published == 5);
    CHECK(s.consumed == 5);
    CHECK(s.abandoned == 0);
}

TEST_CASE("the daemon gives back within 50 ms every block a process killed with SIGKILL held") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client c = connect_to(d);
    auto pool = c.open_pool("frames", Role::publisher);
    REQUIRE(pool);

    // A victim holds blocks the way the step says, then is killed; the survivor's acquire
    // sleeps until the daemon gives them back (every block of the pool is out meanwhile).
    const std::string step = GENERATE(as<std::string>{}, "acquired", "adopted");
    INFO("the victim holds what it " << step);
    std::vector<BlockHandle> handed;
    if (step == "adopted") {
        for (int i = 0; i < 3; ++i) {
            auto b = pool->acquire();
            REQUIRE(b);
            auto h = pool->hand_on(std::move(*b));
            REQUIRE(h);
            handed.push_back(*h);
        }
    }
    Pipe ready = Pipe::make();
    Child victim = Child::spawn([&] {
        auto client = Client::connect(client_options(d, "victim", true));
        if (!client) {
            return 1;
        }
        auto mine =
            client->open_pool("frames", step == "acquired" ? Role::publisher : Role::subscriber);
        if (!mine) {
            return 2;
        }
        std::vector<PoolBlock> held;
        for (int i = 0; i < 3; ++i) {
            auto b = step == "acquired" ? mine->acquire()
                                        : mine->adopt(handed[static_cast<std::size_t>(i)]);
            if (!b) {
                return 3;
            }
            held.push_back(std::move(*b));
        }
        (void)send_record(ready.write_end.get(), 'h');
        for (;;) {
            ::pause();
        }
    });
    REQUIRE(receive_record<char>(ready.read_end.get()) == 'h');
    CHECK(stats_of(c, "frames").depth == 3);
    CHECK(pool->acquire().code() == Errc::would_block);

    const auto killed_at = std::chrono::steady_clock::now();
    REQUIRE(::kill(victim.pid(), SIGKILL) == 0);
    auto back = pool->acquire(std::chrono::seconds{60});
    const auto took = std::chrono::steady_clock::now() - killed_at;
    REQUIRE(back);
    const double ms = std::chrono::duration<double, std::milli>(took).count();
    INFO("a block came back " << ms << " ms after the kill");
    CHECK(took <= 50ms);
    CHECK(victim.wait()->killed_by(SIGKILL));
    REQUIRE(back->release());
    const ChannelStats s = stats_of(c, "frames");
    CHECK(s.depth == 0);
    CHECK(s.abandoned == 3);
    CHECK(s.corrupted == 0);
}

TEST_CASE("a block a killed process handed on stays with its handle, whoever adopts it") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Client c = connect_to(d);
    auto reader = c.open_pool("frames", Role::subscriber);
    REQUIRE(reader);
    auto writer = c.open_pool("frames", Role::publisher);
    REQUIRE(writer);
    Pipe ready = Pipe::make();
    Child victim = Child::spawn([&] {
        auto client = Client::connect(client_options(d, "victim", true));
        if (!client) {
            return 1;
        }
        auto w = client->open_pool("frames", Role::publisher);
        if (!w) {
            return 2;
        }
        auto kept = w->acquire();
        auto b = w->acquire();
        if (!kept || !b) {
            return 3;
        }
        stamp(*b, 0xAB);
        auto h = w->hand_on(std::move(*b));
        if (!h) {
            return 4;
        }
        (void)send_record(ready.write_end.get(), *h);
        for (;;) {
            ::pause();
        }
    });
    auto handle = receive_record<BlockHandle>(ready.read_end.get());
    REQUIRE(handle);
    auto third = writer->acquire(); // the last free block
    REQUIRE(third);
    victim.kill_and_wait(SIGKILL);
    // The daemon gives back the block the victim kept (this acquire sleeps until then); the
    // one it handed on is in transit, the handle's.
    auto kept = writer->acquire(std::chrono::seconds{60});
    REQUIRE(kept);
    ChannelStats s = stats_of(c, "frames");
    CHECK(s.abandoned == 1);
    CHECK(s.depth == 3);
    CHECK(s.redelivered == 1); // one reference in transit
    REQUIRE(kept->release());
    REQUIRE(third->release());
    auto adopted = reader->adopt(*handle);
    REQUIRE(adopted);
    CHECK(stamped(*adopted) == 0xAB);
    REQUIRE(adopted->release());
    CHECK(stats_of(c, "frames").depth == 0);
}

TEST_CASE("a pool's ACL decides who may write: another user reads blocks and cannot acquire") {
    if (::geteuid() != 0) {
        SHMBUS_SKIP("needs root to run a client as another uid");
    }
    DaemonProcess d{"channels:\n"
                    "  - name: shots\n"
                    "    kind: pool\n"
                    "    slot_size: 4096\n"
                    "    slot_count: 2\n"
                    "    acl: {publish: {users: [root]}, subscribe: {users: [\"*\"]}}\n"};
    REQUIRE(d.start());
    REQUIRE(::chmod(d.dir().c_str(), 0755) == 0);
    Client c = connect_to(d);
    auto writer = c.open_pool("shots", Role::publisher);
    REQUIRE(writer);
    auto b = writer->acquire();
    REQUIRE(b);
    stamp(*b, 0x5EED);
    auto h = writer->hand_on(std::move(*b));
    REQUIRE(h);

    struct Seen {
        int publish_code;
        std::uint64_t mark;
        int writable;
    };
    Pipe report = Pipe::make();
    Child other = Child::spawn([&] {
        const gid_t gid = 65534;
        if (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(65534) != 0) {
            return 125;
        }
        auto client = Client::connect(client_options(d, "nobody", true));
        if (!client) {
            return 1;
        }
        Seen seen{};
        auto denied = client->open_pool("shots", Role::publisher);
        seen.publish_code = denied ? 0 : static_cast<int>(denied.code());
        auto r = client->open_pool("shots", Role::subscriber);
        if (!r) {
            return 2;
        }
        auto block = r->adopt(*h);
        if (!block) {
            return 3;
        }
        seen.mark = stamped(*block);
        seen.writable = block->writable() ? 1 : 0;
        return send_record(report.write_end.get(), seen) ? 0 : 4;
    });
    auto seen = receive_record<Seen>(report.read_end.get());
    auto st = other.wait();
    REQUIRE(st);
    if (WIFEXITED(st->raw) && WEXITSTATUS(st->raw) == 125) {
        SHMBUS_SKIP("cannot drop to uid 65534 on this machine");
    }
    INFO(st->describe());
    REQUIRE(seen);
    CHECK(seen->publish_code == static_cast<int>(Errc::permission_denied));
    CHECK(seen->mark == 0x5EED);
    CHECK(seen->writable == 0);
    CHECK(st->exited_ok());
}

TEST_CASE("the pool example runs against the daemon") {
    DaemonProcess d{kConfig};
    REQUIRE(d.start());
    Child child = Child::spawn([&] {
        ::execl(SHMBUS_POOL_EXAMPLE, SHMBUS_POOL_EXAMPLE, "--socket", d.socket_path().c_str(),
                nullptr);
        return 127;
    });
    auto st = child.wait();
    REQUIRE(st);
    INFO(st->describe());
    CHECK(st->exited_ok());
    Client c = connect_to(d);
    const ChannelStats s = stats_of(c, "frames");
    CHECK(s.published == 20);
    CHECK(s.depth == 0);
}
