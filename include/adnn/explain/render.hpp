#pragma once
// Pictures of explanations: a jet-coloured heat map blended over the face (as
// pytorch-grad-cam's show_cam_on_image), a caption in a tiny bitmap font, and grids of
// pictures. Images are data::Image (H, W, C), pixels 0..255.
#include <adnn/data/image.hpp>

#include <array>
#include <string>
#include <vector>

namespace adnn::explain {

// OpenCV's COLORMAP_JET for v in [0, 1] (clamped): dark blue → blue → cyan → yellow → red → dark red.
std::array<float, 3> jet(double v);

// The face (gray or RGB) enlarged by `zoom` (bilinear), with the map (mh × mw values in
// [0, 1], resized bilinearly to the face) as jet colours blended over it:
// image_weight · face + (1 − image_weight) · jet(map). Returns RGB.
data::Image overlay_heatmap(const data::Image& face, const std::vector<double>& map, int64_t mh, int64_t mw,
                            int zoom = 4, double image_weight = 0.5);

// Text in 3×5 glyphs (A–Z, 0–9, space and . % : - + / ( ) _ ; lower case drawn as upper case,
// anything else as a blank) at (x, y), each glyph 3·scale × 5·scale, advance 4·scale.
void draw_text(data::Image& im, int x, int y, const std::string& s, int scale, std::array<float, 3> rgb);
// Width in pixels of draw_text(s, scale).
int text_width(const std::string& s, int scale);

// The picture with a black band of `lines` caption lines above it, in white.
data::Image captioned(const data::Image& pic, const std::vector<std::string>& lines, int scale = 1);

// Tiles (same channel count; sizes may differ) in rows of `cols`, `pad` pixels apart on a
// white ground. RGB when any tile is RGB.
data::Image grid(const std::vector<data::Image>& tiles, int cols, int pad = 4);

}  // namespace adnn::explain
