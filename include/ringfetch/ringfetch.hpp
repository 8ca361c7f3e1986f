// Umbrella header: everything an embedder needs.
#pragma once

#include "ringfetch/engine.hpp"
#include "ringfetch/error.hpp"
#include "ringfetch/item_view.hpp"
#include "ringfetch/plan.hpp"
#include "ringfetch/stats.hpp"
#include "ringfetch/store.hpp"
