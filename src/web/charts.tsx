/** Two small SVG charts, drawn by hand: horizontal bars (one per label) and a histogram. */
export function Bars({ rows, label }: { rows: Array<{ label: string; value: number; note?: string }>; label: string }) {
  const max = Math.max(1e-12, ...rows.map((r) => Math.abs(r.value)));
  const rowHeight = 22;
  return (
    <svg role="img" aria-label={label} width="100%" height={rows.length * rowHeight + 8} viewBox={`0 0 600 ${rows.length * rowHeight + 8}`}>
      {rows.map((r, i) => (
        <g key={r.label} transform={`translate(0 ${i * rowHeight + 4})`}>
          <text x={200} y={14} textAnchor="end" fontSize="12">{r.label.length > 30 ? `…${r.label.slice(-29)}` : r.label}</text>
          <rect x={208} y={3} height={14} width={(Math.abs(r.value) / max) * 300} fill={r.value < 0 ? '#cf222e' : '#0a58ca'}>
            <title>{`${r.label}: ${r.value}${r.note ? ` (${r.note})` : ''}`}</title>
          </rect>
          <text x={214 + (Math.abs(r.value) / max) * 300} y={14} fontSize="11" fill="#57606a">{r.value.toPrecision(3)}</text>
        </g>
      ))}
    </svg>
  );
}

export function Histogram({ bins, label }: { bins: Array<{ lower: number; upper: number; count: number }>; label: string }) {
  const max = Math.max(1, ...bins.map((b) => b.count));
  const width = 600 / Math.max(1, bins.length);
  return (
    <svg role="img" aria-label={label} width="100%" height={160} viewBox="0 0 600 160">
      {bins.map((b, i) => (
        <rect key={i} x={i * width + 1} y={140 - (b.count / max) * 130} width={width - 2} height={(b.count / max) * 130} fill="#0a58ca">
          <title>{`[${b.lower.toPrecision(3)}, ${b.upper.toPrecision(3)}): ${b.count}`}</title>
        </rect>
      ))}
      <text x={0} y={156} fontSize="11" fill="#57606a">{bins[0]?.lower.toPrecision(3)}</text>
      <text x={600} y={156} fontSize="11" fill="#57606a" textAnchor="end">{bins[bins.length - 1]?.upper.toPrecision(3)}</text>
    </svg>
  );
}
