#pragma once
#include "goldylox/detail/engine/engine.hpp"
