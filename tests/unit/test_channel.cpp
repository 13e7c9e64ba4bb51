// Channel creation, validation and descriptor handling.
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace shmbus;
using namespace shmbus::test;

TEST_CASE("a valid spec creates two sealed memfds whose headers verify") {
    auto files = create_channel(spec("create", ChannelKind::queue, 128, 64));
    REQUIRE(files);
    auto info = inspect_channel(*files);
    REQUIRE(info);
    CHECK(info->kind == ChannelKind::queue);
    CHECK(info->slot_size == 128);
    CHECK(info->slot_count == 64);
    CHECK(info->creation_id != 0);
    const int seals = fcntl(files->payload.get(), F_GET_SEALS);
    CHECK((seals & F_SEAL_SHRINK) != 0);
    CHECK((seals & F_SEAL_GROW) != 0);
    CHECK((seals & F_SEAL_SEAL) != 0);
    struct stat st {};
    REQUIRE(fstat(files->control.get(), &st) == 0);
    CHECK(static_cast<std::uint64_t>(st.st_size) == info->control_bytes);
}

TEST_CASE("channel memfds are mode 0600, so another user cannot reopen them writable") {
    auto files = create_channel(spec("mode", ChannelKind::broadcast, 64, 16));
    REQUIRE(files);
    for (const UniqueFd* fd : {&files->control, &files->payload}) {
        struct stat st {};
        REQUIRE(fstat(fd->get(), &st) == 0);
        CHECK((st.st_mode & 07777) == 0600);
    }
}

TEST_CASE("channel_bytes matches the sizes of the created regions") {
    const auto s = spec("bytes", ChannelKind::broadcast, 1000, 256, 2, 3);
    auto bytes = channel_bytes(s);
    REQUIRE(bytes);
    auto files = create_channel(s);
    REQUIRE(files);
    auto info = inspect_channel(*files);
    REQUIRE(info);
    CHECK(*bytes == info->control_bytes + info->payload_bytes);
}

TEST_CASE("every invalid spec field is refused with a message naming it") {
    struct Case {
        ChannelSpec spec;
        std::string needle;
    };
    auto base = [] { return spec("bad", ChannelKind::queue, 64, 16); };
    std::vector<Case> cases;
    {
        auto s = base();
        s.name = "";
        cases.push_back({s, "name"});
    }
    {
        auto s = base();
        s.name = "has space";
        cases.push_back({s, "name contains ' '"});
    }
    {
        auto s = base();
        s.name = std::string(64, 'x');
        cases.push_back({s, "1 to 63 bytes"});
    }
    {
        auto s = base();
        s.slot_size = 0;
        cases.push_back({s, "slot_size 0"});
    }
    {
        auto s = base();
        s.slot_size = kMaxSlotSize + 1;
        cases.push_back({s, "slot_size"});
    }
    {
        auto s = base();
        s.slot_count = 48;
        cases.push_back({s, "slot_count 48 must be a power of two"});
    }
    {
        auto s = base();
        s.slot_count = 1;
        cases.push_back({s, "slot_count 1"});
    }
    {
        auto s = base();
        s.max_publishers = 0;
        cases.push_back({s, "max_publishers 0"});
    }
    {
        auto s = base();
        s.max_subscribers = kMaxEndpoints + 1;
        cases.push_back({s, "max_subscribers"});
    }
    {
        auto s = base();
        s.overflow = Overflow::drop;
        cases.push_back({s, "overflow 'drop' applies to broadcast channels only"});
    }
    for (const auto& c : cases) {
        auto r = create_channel(c.spec);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::invalid_argument);
        INFO(r.error().message());
        CHECK(r.error().message().find(c.needle) != std::string::npos);
    }
}

TEST_CASE("a channel above the memory ceiling is refused naming the bytes it needs") {
    auto s = spec("ceiling", ChannelKind::queue, 1 << 20, 1024);
    auto need = channel_bytes(s);
    REQUIRE(need);
    auto r = create_channel(s, 1 << 20);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::limit_reached);
    CHECK(r.error().detail.find(std::to_string(*need)) != std::string::npos);
    CHECK(r.error().detail.find(s.name) != std::string::npos);
}

TEST_CASE("a subscriber's payload descriptor is read-only and cannot be mapped writable") {
    auto files = create_channel(spec("ro", ChannelKind::broadcast, 64, 16));
    REQUIRE(files);
    auto ro = files->duplicate_for(Role::subscriber);
    REQUIRE(ro);
    CHECK((fcntl(ro->payload.get(), F_GETFL) & O_ACCMODE) == O_RDONLY);
    void* w = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro->payload.get(), 0);
    CHECK(w == MAP_FAILED);
    CHECK(errno == EACCES);
    void* r = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, ro->payload.get(), 0);
    REQUIRE(r != MAP_FAILED);
    CHECK(mprotect(r, 4096, PROT_READ | PROT_WRITE) == -1);
    CHECK(errno == EACCES);
    munmap(r, 4096);
}

TEST_CASE("a publisher cannot attach through a read-only payload descriptor") {
    auto files = create_channel(spec("ro-pub", ChannelKind::queue, 64, 16));
    REQUIRE(files);
    auto ro = files->duplicate_for(Role::subscriber);
    REQUIRE(ro);
    auto again = ro->duplicate_for(Role::publisher);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::permission_denied);
    auto pub = Publisher::attach(std::move(*ro));
    REQUIRE_FALSE(pub);
    CHECK(pub.error().code == Errc::permission_denied);
}

TEST_CASE("ftruncate on a channel descriptor fails because the size is sealed") {
    auto files = create_channel(spec("sealed", ChannelKind::queue, 64, 16));
    REQUIRE(files);
    CHECK(ftruncate(files->payload.get(), 0) == -1);
    CHECK(errno == EPERM);
    CHECK(ftruncate(files->control.get(), 1 << 20) == -1);
    CHECK(errno == EPERM);
}

TEST_CASE("an unsealed file offered as a channel is refused") {
    UniqueFd a{memfd_create("fake", MFD_CLOEXEC)};
    UniqueFd b{memfd_create("fake", MFD_CLOEXEC)};
    REQUIRE(ftruncate(a.get(), 1 << 16) == 0);
    REQUIRE(ftruncate(b.get(), 1 << 16) == 0);
    ChannelFiles files{std::move(a), std::move(b)};
    auto info = inspect_channel(files);
    REQUIRE_FALSE(info);
    CHECK(info.error().code == Errc::corrupted);
    CHECK(info.error().detail.find("not a sealed shmbus memfd") != std::string::npos);
}

TEST_CASE("regions of two different channels are not accepted as one") {
    auto a = create_channel(spec("mix-a", ChannelKind::queue, 64, 16));
    auto b = create_channel(spec("mix-b", ChannelKind::queue, 64, 16));
    REQUIRE(a);
    REQUIRE(b);
    ChannelFiles mixed{std::move(a->control), std::move(b->payload)};
    auto info = inspect_channel(mixed);
    REQUIRE_FALSE(info);
    CHECK(info.error().code == Errc::corrupted);
    CHECK(info.error().detail.find("different channels") != std::string::npos);
}

TEST_CASE("the endpoint tables refuse more endpoints than the channel allows") {
    auto files = create_channel(spec("limits", ChannelKind::queue, 64, 16, 1, 2));
    REQUIRE(files);
    auto p1 = Publisher::attach(*files->duplicate_for(Role::publisher));
    REQUIRE(p1);
    auto p2 = Publisher::attach(*files->duplicate_for(Role::publisher));
    REQUIRE_FALSE(p2);
    CHECK(p2.error().code == Errc::limit_reached);
    CHECK(p2.error().detail.find("max_publishers") != std::string::npos);
    auto s1 = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    auto s2 = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    REQUIRE(s1);
    REQUIRE(s2);
    CHECK(s1->endpoint_index() != s2->endpoint_index());
    auto s3 = Subscriber::attach(*files->duplicate_for(Role::subscriber));
    CHECK(s3.code() == Errc::limit_reached);
}

TEST_CASE("a detached endpoint's table entry can be taken again") {
    auto files = create_channel(spec("reattach", ChannelKind::queue, 64, 16));
    REQUIRE(files);
    {
        auto p = Publisher::attach(*files->duplicate_for(Role::publisher));
        REQUIRE(p);
    }
    auto again = Publisher::attach(*files->duplicate_for(Role::publisher));
    CHECK(again);
}

TEST_CASE("error messages carry code name, detail and errno text") {
    Error e = make_error(Errc::system_error, "mmap of payload region", ENOMEM);
    const std::string m = e.message();
    CHECK(m.find("system_error") == 0);
    CHECK(m.find("mmap of payload region") != std::string::npos);
    CHECK(m.find("memory") != std::string::npos);
    CHECK(errc_name(Errc::corrupted) == "corrupted");
}
