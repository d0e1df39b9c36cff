/**
 * Opens the inventory the settings name: PostgreSQL when SITEFLEET_INVENTORY_URL is set (settings.inventoryUrl,
 * postgres://user:password@host:5432/db, as in the production stack), otherwise the SQLite file
 * (settings.inventoryFile) of the embedded setup.
 */
import type { Settings } from '../config/settings';
import { PostgresInventoryStore } from './postgres-store';
import { SqliteInventoryStore } from './sqlite-store';
import type { InventoryStore } from './store';

export type InventorySettings = Pick<Settings, 'inventoryFile' | 'inventoryUrl'>;

function postgresUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error('SITEFLEET_INVENTORY_URL is not a URL; expected postgres://user:password@host:5432/database');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(
      `SITEFLEET_INVENTORY_URL has scheme "${url.protocol}"; expected postgres://user:password@host:5432/database ` +
        '(unset it to use the SQLite file)',
    );
  }
  return url;
}

/**
 * Opens (creating tables or migrating as needed) the inventory the settings name.
 * @throws when the URL is not a postgres:// URL, the database cannot be reached, or its schema is newer
 */
export async function openInventoryStore(settings: InventorySettings): Promise<InventoryStore> {
  if (settings.inventoryUrl) {
    postgresUrl(settings.inventoryUrl);
    return PostgresInventoryStore.open(settings.inventoryUrl);
  }
  return new SqliteInventoryStore(settings.inventoryFile);
}

/** Where the inventory is, fit for a log line: the file, or the URL without its password. */
export function inventoryLocation(settings: InventorySettings): string {
  if (!settings.inventoryUrl) return settings.inventoryFile;
  try {
    const url = postgresUrl(settings.inventoryUrl);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(invalid SITEFLEET_INVENTORY_URL)';
  }
}
