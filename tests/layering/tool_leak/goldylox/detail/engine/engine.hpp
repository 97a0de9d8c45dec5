#pragma once
#include "sim/trace.hpp"
