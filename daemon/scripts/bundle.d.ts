export interface BundleOptions {
  entry: 'bin' | 'launcher-main';
  outfile: string;
  version?: string;
  /** JavaScript placed before everything else in the bundle (tests bake a crash in). */
  prelude?: string;
}
export function bundleDaemon(options: BundleOptions): Promise<{ outfile: string; version: string }>;
