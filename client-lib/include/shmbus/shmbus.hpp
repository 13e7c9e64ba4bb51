// The whole public API of libshmbus.
#pragma once

#include <shmbus/blackboard.hpp>
#include <shmbus/channel.hpp>
#include <shmbus/client.hpp>
#include <shmbus/counters.hpp>
#include <shmbus/endpoint.hpp>
#include <shmbus/error.hpp>
#include <shmbus/events.hpp>
#include <shmbus/pool.hpp>
#include <shmbus/rpc.hpp>
#include <shmbus/supervisor.hpp>
#include <shmbus/unique_fd.hpp>
#include <shmbus/version.hpp>
